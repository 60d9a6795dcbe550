import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  decodeHeartbeat,
  encodeHeartbeat,
  HEARTBEAT_RECORD_BYTES,
  ReadFailure,
  SocketReader,
} from '../src/index.js'

const tmp = makeTempDir('reader-')
const path = join(tmp.path, 's.sock')
let server: Server
const accepted: Socket[] = []

beforeAll(async () => {
  server = createServer((s) => accepted.push(s))
  await new Promise<void>((r) => server.listen(path, r))
})
afterAll(async () => {
  await new Promise((r) => server.close(r))
  tmp.remove()
})

/** A connected pair of real Unix sockets: write on `a`, read on `b`. */
async function pair(): Promise<{ a: Socket; b: Socket }> {
  const a = netConnect(path)
  await new Promise((r) => a.once('connect', r))
  while (accepted.length === 0) await new Promise((r) => setImmediate(r))
  const b = accepted.shift() as Socket
  return { a, b }
}

async function writeChunks(a: Socket, data: Buffer, cuts: number[]): Promise<void> {
  let at = 0
  for (const cut of [...cuts.filter((c) => c > 0 && c < data.length)].sort((x, y) => x - y)) {
    a.write(data.subarray(at, cut))
    at = cut
    await new Promise((r) => setImmediate(r))
  }
  a.write(data.subarray(at))
}

describe('SocketReader', () => {
  it('reads the same lines and records however the bytes are split (property, real sockets)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u).toString('hex')),
          { maxLength: 8 },
        ),
        fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { maxLength: 4 }),
        fc.array(fc.nat(600), { maxLength: 10 }),
        async (lines, ids, cuts) => {
          const { a, b } = await pair()
          const records = ids.map((id) => Buffer.concat([Buffer.from(id), Buffer.from([0x0a])]))
          const data = Buffer.concat([...lines.map((l) => Buffer.from(`${l}\n`)), ...records])
          const reader = new SocketReader(b, { highWaterMark: 64 })
          await writeChunks(a, data, cuts)
          for (const line of lines) expect((await reader.readLine(100)).toString()).toBe(line)
          for (const r of records) {
            const got = await reader.readExact(HEARTBEAT_RECORD_BYTES)
            expect(got.equals(r)).toBe(true)
          }
          a.destroy()
          b.destroy()
        },
      ),
      { numRuns: 40 },
    )
  })

  it('fails a line over the limit as too-long, and a closed peer as closed', async () => {
    const { a, b } = await pair()
    const reader = new SocketReader(b)
    a.write(Buffer.alloc(5000, 0x61))
    const err = await reader.readLine(4096, { what: 'the line' }).catch((e) => e)
    expect(err).toBeInstanceOf(ReadFailure)
    expect(err.reason).toBe('too-long')
    const { a: a2, b: b2 } = await pair()
    const reader2 = new SocketReader(b2)
    a2.end('partial')
    const err2 = await reader2.readLine(100, { what: 'the line' }).catch((e) => e)
    expect(err2.reason).toBe('closed')
    for (const s of [a, b, b2]) s.destroy()
  })

  it('times out, and honours an abort signal', async () => {
    const { a, b } = await pair()
    const reader = new SocketReader(b)
    const err = await reader.readExact(2, { timeoutMs: 50 }).catch((e) => e)
    expect(err.reason).toBe('timeout')
    const ac = new AbortController()
    const pending = reader.readExact(2, { signal: ac.signal })
    ac.abort()
    expect((await pending.catch((e) => e)).reason).toBe('aborted')
    a.destroy()
    b.destroy()
  })

  it('a line dripped in small chunks is scanned once and joined once (no quadratic rescans)', async () => {
    const { a, b } = await pair()
    const reader = new SocketReader(b)
    const line = Buffer.alloc(256 * 1024, 0x61)
    for (let i = 0; i < line.length; i += 997) line[i] = 0x30 + (i % 10)
    const concat = vi.spyOn(Buffer, 'concat')
    try {
      const read = reader.readLine(1024 * 1024)
      // 512-byte drips, each its own write with a turn of the event loop between.
      for (let at = 0; at < line.length; at += 512) {
        a.write(line.subarray(at, at + 512))
        await new Promise((r) => setImmediate(r))
      }
      a.write('\nnext')
      const got = await read
      expect(got.equals(line)).toBe(true)
      // The old reader joined its whole buffer on every chunk (hundreds of calls here).
      expect(concat.mock.calls.length).toBeLessThan(8)
      expect((await reader.peek(4, { timeoutMs: 10_000 })).toString()).toBe('next')
    } finally {
      concat.mockRestore()
      a.destroy()
      b.destroy()
    }
  })

  it('a dripped line without LF fails as too-long once past the limit, with bounded buffering', async () => {
    const { a, b } = await pair()
    const reader = new SocketReader(b, { highWaterMark: 1024 })
    const read = reader.readLine(4096, { what: 'the line' })
    const failed = read.then(
      () => undefined,
      (err: unknown) => err,
    )
    let sent = 0
    let outcome: unknown
    // Bounded drip: stops as soon as the reader gives up (it must, after ~4 KiB).
    while (sent < 64 * 1024) {
      a.write(Buffer.alloc(256, 0x62))
      sent += 256
      await new Promise((r) => setImmediate(r))
      outcome = await Promise.race([failed, new Promise((r) => setImmediate(() => r('pending')))])
      if (outcome !== 'pending') break
    }
    expect(outcome).toBeInstanceOf(ReadFailure)
    expect((outcome as ReadFailure).reason).toBe('too-long')
    expect(reader.buffered).toBeLessThanOrEqual(4096 + 1 + 64 * 1024)
    expect(sent).toBeLessThan(64 * 1024)
    a.destroy()
    b.destroy()
  })

  it('release() hands back the bytes read ahead and leaves the socket usable', async () => {
    const { a, b } = await pair()
    const reader = new SocketReader(b)
    a.write('header\npayload-1')
    expect((await reader.readLine(100)).toString()).toBe('header')
    await new Promise((r) => setTimeout(r, 20))
    const rest = reader.release()
    const more: Buffer[] = [rest]
    b.on('data', (c: Buffer) => more.push(c))
    a.end('|payload-2')
    await new Promise((r) => b.once('end', r))
    expect(Buffer.concat(more).toString()).toBe('payload-1|payload-2')
    b.destroy()
  })
})

describe('heartbeat record', () => {
  it('round-trips every id, including ones full of 0x0A (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const hex = Buffer.from(bytes).toString('hex')
        const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
        const record = encodeHeartbeat(id)
        expect(record).toHaveLength(17)
        expect(record[16]).toBe(0x0a)
        expect(decodeHeartbeat(record)).toBe(id)
      }),
    )
  })

  it('decoding arbitrary bytes never throws (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const id = decodeHeartbeat(bytes)
        if (id !== undefined) expect(bytes[16]).toBe(0x0a)
      }),
    )
  })
})
