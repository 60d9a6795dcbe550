import { once } from 'node:events'
import net from 'node:net'
import { join } from 'node:path'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { createLogRing } from '../src/index.js'

const temp = makeTempDir('odyn-ring-')
const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

/** A real Unix-socket pair: the ring writes to `server`, the test reads from `client`. */
async function socketPair(): Promise<{ server: net.Socket; client: net.Socket }> {
  const path = join(temp.path, `s${Math.random().toString(36).slice(2)}.sock`)
  const listener = net.createServer()
  listener.listen(path)
  await once(listener, 'listening')
  const accepted = once(listener, 'connection')
  const client = net.connect(path)
  const [server] = (await accepted) as [net.Socket]
  listener.close()
  cleanups.push(() => {
    client.destroy()
    server.destroy()
  })
  return { server, client }
}

describe('log ring', () => {
  it('keeps whole lines within capacity, evicting the oldest', () => {
    const ring = createLogRing({ capacity: 100 })
    const src = ring.source()
    for (let i = 0; i < 50; i++) src.push(Buffer.from(`line ${i}\n`))
    expect(ring.size).toBeLessThanOrEqual(100)
    const text = ring.snapshot().toString()
    expect(text.endsWith('line 49\n')).toBe(true)
    expect(
      text
        .split('\n')
        .slice(0, -1)
        .every((l) => /^line \d+$/.test(l)),
    ).toBe(true)
  })

  it('assembles lines across chunks, splits over-long ones, flushes the tail at end, prefixes', () => {
    const ring = createLogRing({ maxLineLength: 8 })
    const src = ring.source('[s] ')
    src.push(Buffer.from('ab'))
    src.push(Buffer.from('c\n0123456789\ntail'))
    src.end()
    expect(ring.snapshot().toString()).toBe('[s] abc\n[s] 01234567\n[s] 89\n[s] tail\n')
  })

  it('replays the ring to a new reader, then streams live lines', async () => {
    const ring = createLogRing()
    const src = ring.source()
    src.push(Buffer.from('old\n'))
    const { server, client } = await socketPair()
    ring.attach(server)
    src.push(Buffer.from('new\n'))
    let got = ''
    client.on('data', (c: Buffer) => {
      got += c.toString()
    })
    await waitFor(() => got === 'old\nnew\n', { what: 'replay + live' })
    expect(ring.readers).toBe(1)
  })

  it('drops the oldest whole lines for a stalled reader, with a marker, and never blocks the writer', async () => {
    const ring = createLogRing({ capacity: 64 * 1024, readerBacklog: 16 * 1024 })
    const { server, client } = await socketPair()
    client.pause()
    ring.attach(server)
    const src = ring.source()
    const line = (i: number) => `${String(i).padStart(6, '0')} ${'y'.repeat(90)}\n`
    for (let i = 0; i < 20_000; i++) src.push(Buffer.from(line(i))) // ~2 MB, synchronously
    // Memory stays bounded however much was written: the socket holds at most its high-water mark
    // plus the one line that crossed it (Node 22+ raised the default mark from 16 to 64 KiB).
    expect(server.writableLength).toBeLessThanOrEqual(server.writableHighWaterMark + 4096)
    expect(server.writableLength).toBeLessThan((2 * 1024 * 1024) / 10)
    let got = ''
    client.on('data', (c: Buffer) => {
      got += c.toString()
    })
    client.resume()
    await waitFor(() => got.includes(line(19_999)), { what: 'the newest line', timeoutMs: 10_000 })
    const lines = got.split('\n').slice(0, -1)
    expect(lines.some((l) => /^\[odyn\] \d+ bytes of log dropped/.test(l))).toBe(true)
    for (const l of lines) expect(l).toMatch(/^(\d{6} y{90}|\[odyn\] \d+ bytes of log dropped.*)$/)
  })
})
