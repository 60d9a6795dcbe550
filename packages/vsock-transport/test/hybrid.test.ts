import { once } from 'node:events'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { connect, listen, peerAddressOf, serverAddressOf } from '../src/index.js'
import { type FakeMux, type MuxMode, startFakeMux } from './fake-mux.js'

let temp: ReturnType<typeof makeTempDir>
let mux: FakeMux | undefined
const closers: (() => Promise<unknown>)[] = []

beforeEach(() => {
  temp = makeTempDir('vt-hv-')
})
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()))
  await mux?.close()
  mux = undefined
  temp.remove()
})

const muxPath = () => join(temp.path, 'v.sock')
async function withMux(mode: MuxMode): Promise<FakeMux> {
  mux = await startFakeMux(muxPath(), mode)
  return mux
}
function track(server: net.Server): net.Server {
  closers.push(() => new Promise((resolve) => server.close(resolve)))
  return server
}

describe('hybrid vsock (hvsock://)', () => {
  it('listen("hvsock:///p:5000") listens on the Unix socket /p_5000 (guest→host)', async () => {
    const server = track(await listen(`hvsock://${muxPath()}:5000`, {}, (s) => s.end('from host')))
    expect(existsSync(`${muxPath()}_5000`)).toBe(true)
    expect(serverAddressOf(server)).toEqual({ scheme: 'hvsock', path: muxPath(), port: 5000 })
    // The VMM side: a plain Unix connect to <path>_<port>, no handshake.
    const vmm = net.connect(`${muxPath()}_5000`)
    const chunks: Buffer[] = []
    vmm.on('data', (d) => chunks.push(d))
    await once(vmm, 'end')
    expect(Buffer.concat(chunks).toString()).toBe('from host')
    vmm.destroy()
  })

  it('connect sends "CONNECT <port>\\n" and resolves after "OK <n>\\n" (host→guest)', async () => {
    const m = await withMux('normal')
    track(await listen(`hvsock://${muxPath()}:6001`, {}, (s) => s.pipe(s)))
    const socket = await connect(`hvsock://${muxPath()}:6001`, { timeoutMs: 10_000 })
    expect(m.requests).toEqual(['CONNECT 6001'])
    expect(peerAddressOf(socket)).toEqual({ scheme: 'hvsock', path: muxPath(), port: 6001 })
    socket.end('ping')
    const [data] = await once(socket, 'data')
    expect(String(data)).toBe('ping')
    socket.destroy()
  })

  it('bytes the multiplexer sends right after the OK line reach the caller (not eaten by the handshake)', async () => {
    await withMux('trailing-bytes')
    track(await listen(`hvsock://${muxPath()}:6002`, {}, (s) => s.end()))
    const socket = await connect(`hvsock://${muxPath()}:6002`, { timeoutMs: 10_000 })
    const chunks: Buffer[] = []
    socket.on('data', (d) => chunks.push(d))
    await once(socket, 'end')
    expect(Buffer.concat(chunks).toString()).toBe('early bytes')
  })

  it('nothing listening on the guest port: the multiplexer hangs up and connect is ConnectionRefusedError', async () => {
    await withMux('normal')
    await expect(connect(`hvsock://${muxPath()}:6003`, { timeoutMs: 10_000 })).rejects.toMatchObject({
      name: 'ConnectionRefusedError',
      code: 'ENCLAVE_VSOCK_CONNECTION_REFUSED',
    })
  })

  it('no multiplexer at the path: ConnectionRefusedError with systemCode ENOENT', async () => {
    await expect(connect(`hvsock://${muxPath()}:6004`)).rejects.toMatchObject({
      code: 'ENCLAVE_VSOCK_CONNECTION_REFUSED',
      systemCode: 'ENOENT',
    })
  })

  it('a reply that is not "OK <n>" is HandshakeError naming what came back', async () => {
    await withMux('garbage')
    const err = await connect(`hvsock://${muxPath()}:6005`, { timeoutMs: 10_000 }).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'HandshakeError', code: 'ENCLAVE_VSOCK_HANDSHAKE_FAILED' })
    expect((err as Error).message).toContain('"NOPE"')
  })

  it('a reply line longer than 64 bytes is HandshakeError (bounded read)', async () => {
    await withMux('no-newline')
    await expect(connect(`hvsock://${muxPath()}:6006`, { timeoutMs: 10_000 })).rejects.toMatchObject({
      code: 'ENCLAVE_VSOCK_HANDSHAKE_FAILED',
    })
  })

  it('a multiplexer that never answers: timeoutMs gives ConnectTimeoutError', async () => {
    const m = await withMux('silent')
    // The point is a timeout DURING the handshake. Under load the timer may fire before the Unix
    // connect even completes (still a ConnectTimeoutError, but no CONNECT line was sent): then try
    // again with a longer limit, a bounded number of times.
    let sawHandshakeTimeout = false
    for (let attempt = 0, timeoutMs = 1000; attempt < 4 && !sawHandshakeTimeout; attempt++, timeoutMs *= 2) {
      const before = m.requests.length
      const arrived = m.nextRequest().then(() => 'request' as const)
      const pending = connect(`hvsock://${muxPath()}:6007`, { timeoutMs })
      const outcome = pending.catch((err: unknown) => err)
      const first = await Promise.race([arrived, outcome.then(() => 'settled' as const)])
      await expect(pending).rejects.toMatchObject({
        name: 'ConnectTimeoutError',
        code: 'ENCLAVE_VSOCK_CONNECT_TIMEOUT',
      })
      if (first === 'request') {
        // A line from an earlier attempt may still trickle in; every line is this port's request.
        expect(m.requests.slice(before)).toContain('CONNECT 6007')
        expect(
          m.requests.every((line) => line === 'CONNECT 6007'),
          m.requests.join(', '),
        ).toBe(true)
        sawHandshakeTimeout = true
      }
    }
    expect(sawHandshakeTimeout, 'the request never reached the multiplexer before the timeout').toBe(true)
  })

  it('a multiplexer that never answers: aborting the signal gives AbortError', async () => {
    await withMux('silent')
    const controller = new AbortController()
    const pending = connect(`hvsock://${muxPath()}:6008`, { signal: controller.signal })
    await new Promise((resolve) => setTimeout(resolve, 100))
    controller.abort()
    await expect(pending).rejects.toMatchObject({ name: 'AbortError', code: 'ENCLAVE_VSOCK_ABORTED' })
  })
})
