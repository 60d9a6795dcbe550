import { once } from 'node:events'
import type { Socket } from 'node:net'
import { createBridgeLogger, createLogDestination } from '@enclave/bridge-enclave'
import { waitFor } from '@enclave/test-helpers'
import { connect } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import type { BridgeHost } from '../src/index.js'
import { devWorld, startHost } from './helpers.js'

let world: ReturnType<typeof devWorld>
let host: BridgeHost | undefined

afterEach(async () => {
  await host?.close({ drainTimeoutMs: 0 })
  host = undefined
  world?.remove()
})

describe('log forwarding (vsock 4999 → stdout)', () => {
  it('writes whole lines only, never interleaving concurrent connections mid-line', async () => {
    world = devWorld()
    const started = await startHost(world)
    host = started.host
    const N = 4
    const LINES = 200
    const sockets: Socket[] = await Promise.all(
      Array.from({ length: N }, () => connect('vsock://3:4999', { dev: world.enclaveDev })),
    )
    // Each connection dribbles its lines in 7-byte pieces, all connections at once.
    const streams = sockets.map((_, c) =>
      Buffer.from(
        Array.from(
          { length: LINES },
          (_, i) => `${JSON.stringify({ conn: c, line: i, pad: 'x'.repeat(i % 50) })}\n`,
        ).join(''),
      ),
    )
    for (let off = 0; streams.some((s) => off < s.length); off += 7) {
      sockets.forEach((s, c) => {
        const data = streams[c] as Buffer
        if (off < data.length) s.write(data.subarray(off, off + 7))
      })
      if (off % 700 === 0) await new Promise((r) => setImmediate(r))
    }
    for (const s of sockets) s.end()
    await waitFor(() => started.logs.text().split('\n').length > N * LINES, { what: 'all log lines' })
    // Every write to stdout is exactly one whole line.
    for (const w of started.logs.writes) {
      expect(w.indexOf(0x0a)).toBe(w.length - 1)
      JSON.parse(w.toString())
    }
    const seen = started.logs
      .text()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { conn: number; line: number })
    for (let c = 0; c < N; c++) {
      expect(seen.filter((r) => r.conn === c).map((r) => r.line)).toEqual(
        Array.from({ length: LINES }, (_, i) => i),
      )
    }
    expect(host.stats().logs.lines).toBe(N * LINES)
  })

  it('cuts a line over the limit and keeps going', async () => {
    world = devWorld()
    const started = await startHost(world, { maxLogLineBytes: 100 })
    host = started.host
    const s = await connect('vsock://3:4999', { dev: world.enclaveDev })
    s.end(`${'a'.repeat(250)}\nnext line\nlast line without newline`)
    await waitFor(() => host?.stats().logs.lines === 3, { what: '3 lines' })
    expect(started.logs.text()).toBe(`${'a'.repeat(100)}\nnext line\nlast line without newline\n`)
    expect(host.stats().logs.truncatedLines).toBe(1)
  })

  it('a long line dripped in small pieces comes out whole and once, with the cut still applied', async () => {
    world = devWorld()
    const started = await startHost(world, { maxLogLineBytes: 48 * 1024 })
    host = started.host
    const s = await connect('vsock://3:4999', { dev: world.enclaveDev })
    const long = Buffer.from(Array.from({ length: 40 * 1024 }, (_, i) => 0x41 + (i % 26)))
    const tooLong = Buffer.alloc(50 * 1024, 0x7a)
    const data = Buffer.concat([long, Buffer.from('\n'), tooLong, Buffer.from('\nend\n')])
    for (let at = 0; at < data.length; at += 333) {
      s.write(data.subarray(at, at + 333))
      if (at % (333 * 16) === 0) await new Promise((r) => setImmediate(r))
    }
    s.end()
    await waitFor(() => host?.stats().logs.lines === 3, { what: '3 lines' })
    const lines = started.logs.writes
    expect(lines).toHaveLength(3)
    expect(lines[0]?.equals(Buffer.concat([long, Buffer.from('\n')]))).toBe(true)
    expect(lines[1]?.equals(Buffer.concat([tooLong.subarray(0, 48 * 1024), Buffer.from('\n')]))).toBe(true)
    expect(lines[2]?.toString()).toBe('end\n')
    expect(host.stats().logs.truncatedLines).toBe(1)
  })

  it('the enclave pino logger reaches the host, even when it logs before the host is up', async () => {
    world = devWorld()
    const dest = createLogDestination({ dev: world.enclaveDev })
    const log = createBridgeLogger({ appName: 'early-bird' }, dest)
    log.info({ n: 1 }, 'before the host exists')
    const started = await startHost(world)
    host = started.host
    await once(dest, 'connected')
    log.warn({ n: 2 }, 'after')
    await waitFor(() => host?.stats().logs.lines === 2, { what: '2 lines' })
    const lines = started.logs
      .text()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { app: string; msg: string; n: number })
    expect(lines.map((l) => [l.app, l.n, l.msg])).toEqual([
      ['early-bird', 1, 'before the host exists'],
      ['early-bird', 2, 'after'],
    ])
    await dest.close()
  })

  it('the enclave log buffer is bounded while the host is away: oldest lines dropped, and said so', async () => {
    world = devWorld()
    const dest = createLogDestination({ dev: world.enclaveDev, maxBufferBytes: 1000 })
    for (let i = 0; i < 100; i++) dest.write(`${JSON.stringify({ i, pad: 'x'.repeat(40) })}\n`)
    expect(dest.dropped).toBeGreaterThan(0)
    const started = await startHost(world)
    host = started.host
    await once(dest, 'connected')
    await waitFor(() => started.logs.text().includes('"i":99'), { what: 'the newest line' })
    const lines = started.logs.text().trimEnd().split('\n')
    expect(lines.length).toBeLessThan(100)
    expect(lines.some((l) => l.includes('lines dropped'))).toBe(true)
    expect(lines.at(-1)).toContain('"i":99')
    await dest.close()
  })
})
