import { once } from 'node:events'
import type { Socket } from 'node:net'
import {
  connectBridge,
  InvalidSettingsError,
  MissingAckError,
  SocketReader,
  settingsToJson,
} from '@enclave/bridge-enclave'
import { connect } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import { type BridgeHost, HandshakeFailedError, type ReadyInfo } from '../src/index.js'
import { devWorld, settings, startHost } from './helpers.js'

let world: ReturnType<typeof devWorld>
let host: BridgeHost | undefined
const sockets: Socket[] = []

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  await host?.close({ drainTimeoutMs: 0 })
  host = undefined
  world?.remove()
})

/** A raw connection to the host's handshake port, for writing malformed steps by hand. */
async function raw(): Promise<{ socket: Socket; reader: SocketReader }> {
  const socket = await connect('vsock://3:5000', { dev: world.enclaveDev })
  sockets.push(socket)
  return { socket, reader: new SocketReader(socket) }
}

function nextHandshakeError(h: BridgeHost): Promise<HandshakeFailedError> {
  return once(h, 'handshakeError').then(([err]) => err as HandshakeFailedError)
}

/** A well-behaved enclave hand-shakes fine: proof the host stayed up after a bad one. */
async function goodHandshake(): Promise<ReadyInfo> {
  const ready = once(host as BridgeHost, 'ready')
  const hs = await connectBridge({ dev: world.enclaveDev, maxAttempts: 20 })
  const session = await hs.finish(settings(), { watchdog: false })
  session.close()
  return (await ready)[0] as ReadyInfo
}

describe('handshake', () => {
  it('forwards only allowlisted env, applies the settings and ACKs', async () => {
    world = devWorld()
    ;({ host } = await startHost(world, {
      env: { APP_NAME: 'x', APP_MODE: 'dev', DB_PASSWORD: 'secret', PLAIN: '1' },
      forwardEnv: ['APP_*', 'PLAIN'],
    }))
    const ready = once(host, 'ready')
    const hs = await connectBridge({ dev: world.enclaveDev })
    expect(hs.env).toEqual({ APP_MODE: 'dev', APP_NAME: 'x', PLAIN: '1' })
    const s = settings({ appName: 'full' })
    const session = await hs.finish(s, { watchdog: false })
    const [info] = (await ready) as [ReadyInfo]
    expect(info.settings).toEqual(s)
    expect(info.forwardedEnv).toEqual(['APP_MODE', 'APP_NAME', 'PLAIN'])
    expect(host.state).toBe('running')
    expect(host.stats().handshakes).toEqual({ completed: 1, failed: 0 })
    session.close()
  })

  it('forwards nothing by default, everything with forwardAllEnv', async () => {
    world = devWorld()
    ;({ host } = await startHost(world, { env: { A: '1', B: '2' } }))
    const hs = await connectBridge({ dev: world.enclaveDev })
    expect(hs.env).toEqual({})
    hs.close()
    await host.close()
    ;({ host } = await startHost(world, { env: { A: '1', B: '2' }, forwardAllEnv: true }))
    const hs2 = await connectBridge({ dev: world.enclaveDev })
    expect(hs2.env).toEqual({ A: '1', B: '2' })
    hs2.close()
  })

  it('warns about unknown settings fields and still completes', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const { socket, reader } = await raw()
    socket.write(Buffer.from([0x06, 0x0a]))
    await reader.readLine(1024)
    const wire = { ...settingsToJson(settings()), extra: true, servers: null, clients: null }
    const ready = once(host, 'ready')
    socket.write(`${JSON.stringify(wire)}\n`)
    const ack = await reader.readLine(16)
    expect([...ack]).toEqual([0x06])
    const [info] = (await ready) as [ReadyInfo]
    expect(info.warnings).toEqual(['unknown field "extra" ignored'])
  })

  it('rejects a bad first ACK with a clear error and stays up', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const failed = nextHandshakeError(host)
    const { socket } = await raw()
    socket.write('hello\n')
    const err = await failed
    expect(err).toBeInstanceOf(HandshakeFailedError)
    expect(err.step).toBe('ack')
    expect(err.message).toMatch(/not an ACK \(06 0a\) but 6865/)
    await goodHandshake()
  })

  it('rejects settings that are not JSON and stays up', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const failed = nextHandshakeError(host)
    const { socket, reader } = await raw()
    socket.write(Buffer.from([0x06, 0x0a]))
    await reader.readLine(1024)
    socket.write('{"appName": oops}\n')
    const err = await failed
    expect(err.step).toBe('settings')
    expect(err.message).toMatch(/not valid JSON/)
    await goodHandshake()
  })

  it('rejects a settings line over 1 MiB without buffering it all, and stays up', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const failed = nextHandshakeError(host)
    const { socket, reader } = await raw()
    socket.on('error', () => {})
    socket.write(Buffer.from([0x06, 0x0a]))
    await reader.readLine(1024)
    socket.write(Buffer.alloc(1024 * 1024 + 100, 0x61))
    const err = await failed
    expect(err.step).toBe('settings')
    expect(err.message).toMatch(/longer than 1048576 bytes/)
    await goodHandshake()
  })

  it('times out a peer that never sends its ACK', async () => {
    world = devWorld()
    // Short is safe here: nothing is ever sent, so only the ACK step can time out.
    ;({ host } = await startHost(world, { handshakeTimeoutMs: 300 }))
    const failed = nextHandshakeError(host)
    await raw()
    const err = await failed
    expect(err.step).toBe('ack')
    expect(err.message).toMatch(/did not arrive within 300 ms/)
  })

  it('times out a peer that never sends settings, and stays up for the next enclave', async () => {
    world = devWorld()
    // Each step gets 1.5 s: the ACK (sent at once) cannot miss it under load, so the settings
    // step is the one that times out, and the good handshake afterwards has room too.
    ;({ host } = await startHost(world, { handshakeTimeoutMs: 1500 }))
    const failed = nextHandshakeError(host)
    const { socket, reader } = await raw()
    socket.write(Buffer.from([0x06, 0x0a]))
    await reader.readLine(1024)
    const err = await failed
    expect(err.step).toBe('settings')
    expect(err.message).toMatch(/settings line did not arrive within 1500 ms/)
    await goodHandshake()
  })

  it('rejects settings of the wrong type naming the field; the enclave gets MissingAckError', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const failed = nextHandshakeError(host)
    const { socket, reader } = await raw()
    socket.write(Buffer.from([0x06, 0x0a]))
    await reader.readLine(1024)
    const wire = settingsToJson(settings()) as { watchdog: { interval: unknown } }
    wire.watchdog.interval = '30s'
    socket.write(`${JSON.stringify(wire)}\n`)
    const err = await failed
    expect(err.step).toBe('settings')
    expect(err.cause).toBeInstanceOf(InvalidSettingsError)
    expect(err.message).toMatch(/watchdog\.interval: expected an integer, got a string/)

    // Through the library: a server tunnel on a port that is taken fails at the apply step.
    const blocker = await import('node:net').then(
      (net) =>
        new Promise<import('node:net').Server>((resolve) => {
          const s = net.createServer()
          s.listen(0, '127.0.0.1', () => resolve(s))
        }),
    )
    const port = (blocker.address() as { port: number }).port
    const failed2 = nextHandshakeError(host)
    const hs = await connectBridge({ dev: world.enclaveDev })
    await expect(
      hs.finish(settings({ servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: port }] })),
    ).rejects.toBeInstanceOf(MissingAckError)
    const err2 = await failed2
    expect(err2.step).toBe('apply')
    expect(err2.message).toMatch(new RegExp(`tcp://127.0.0.1:${port}`))
    blocker.close()
    await goodHandshake()
    expect(host.stats().handshakes.failed).toBe(2)
  })

  it('retries until the host appears (backoff), then hand-shakes', async () => {
    world = devWorld()
    const pending = connectBridge({ dev: world.enclaveDev, backoff: { initialMs: 10, maxMs: 50 } })
    await new Promise((r) => setTimeout(r, 200))
    ;({ host } = await startHost(world, { env: { X: '1' }, forwardEnv: ['X'] }))
    const hs = await pending
    expect(hs.env).toEqual({ X: '1' })
    hs.close()
  })

  it('a new handshake after an enclave restart replaces the session and works', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const first = settings({ clients: [{ enclaveDialPort: 6002, requestTimeoutMs: 0 }] })
    const hs1 = await connectBridge({ dev: world.enclaveDev })
    const s1 = await hs1.finish(first)
    expect(host.stats().session?.enclaveId).toBe(first.watchdog.enclaveId)
    s1.close() // the enclave dies

    const second = settings({ clients: [{ enclaveDialPort: 6002, requestTimeoutMs: 0 }] })
    const ready = once(host, 'ready')
    const hs2 = await connectBridge({ dev: world.enclaveDev })
    const s2 = await hs2.finish(second)
    await ready
    expect(host.state).toBe('running')
    expect(host.stats().session?.enclaveId).toBe(second.watchdog.enclaveId)
    expect(host.stats().tunnels).toHaveLength(1)
    expect(host.stats().handshakes.completed).toBe(2)
    s2.close()
  })
})

describe('hostile peers', () => {
  it('random settings lines never crash the host; each gets a clear error (fuzz)', async () => {
    const fc = (await import('fast-check')).default
    world = devWorld()
    ;({ host } = await startHost(world, { handshakeTimeoutMs: 2000 }))
    const h = host
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
          fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
        ),
        async (payload) => {
          const line = Buffer.concat([payload.filter((b) => b !== 0x0a), Buffer.from('\n')])
          // The loser's listeners are removed (abort), so 60 runs do not pile them up on the host.
          const settled = new AbortController()
          const { signal } = settled
          const outcome = Promise.race([
            once(h, 'handshakeError', { signal }).then(([e]) => e as HandshakeFailedError),
            once(h, 'ready', { signal }).then(() => 'ready' as const),
          ]).finally(() => settled.abort())
          const { socket, reader } = await raw()
          socket.on('error', () => {})
          socket.write(Buffer.from([0x06, 0x0a]))
          await reader.readLine(1024)
          socket.write(line)
          const result = await outcome
          if (result !== 'ready') {
            expect(result).toBeInstanceOf(HandshakeFailedError)
            expect(result.step).toBe('settings')
          }
          socket.destroy()
        },
      ),
      { numRuns: 60 },
    )
    expect(h.state === 'waiting' || h.state === 'running').toBe(true)
    await goodHandshake()
  })

  it('bounds the handshakes in progress at once', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const { MAX_PENDING_HANDSHAKES } = await import('../src/host.js')
    const held = await Promise.all(Array.from({ length: MAX_PENDING_HANDSHAKES }, () => raw()))
    await new Promise((r) => setTimeout(r, 50))
    const extra = await connect('vsock://3:5000', { dev: world.enclaveDev })
    extra.on('error', () => {})
    extra.resume()
    await once(extra, 'close')
    for (const h of held) h.socket.destroy()
    await goodHandshake()
  })
})
