import { createServer, type Server, type Socket } from 'node:net'
import { DestinationDeniedError, DialFailedError, dialThroughBridge } from '@enclave/bridge-enclave'
import { holdDeadPort } from '@enclave/test-helpers'
import { connect, listen } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import type { BridgeHost, BridgeHostOptions } from '../src/index.js'
import {
  bridged as bridgedHost,
  close,
  devWorld,
  echo,
  enclaveServer,
  type HostDeps,
  hashUntilEnd,
  pattern,
  sha256Of,
  writeAll,
} from './helpers.js'

let world: ReturnType<typeof devWorld>
let host: BridgeHost | undefined
const servers: Server[] = []

const releases: (() => Promise<void>)[] = []

afterEach(async () => {
  await Promise.all(releases.splice(0).map((r) => r()))
  await host?.close({ drainTimeoutMs: 0 })
  host = undefined
  await Promise.all(servers.splice(0).map(close))
  world?.remove()
})

function tcpServer(handler: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer({ allowHalfOpen: true }, handler)
    servers.push(server)
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as { port: number }).port }),
    )
  })
}

/** Host + a hand-shaken enclave with one server tunnel (5001 → TCP) and one client tunnel (5002). */
async function bridged(options: BridgeHostOptions = {}, deps: HostDeps = {}): Promise<{ tcpPort: number }> {
  world = devWorld()
  const b = await bridgedHost(world, options, deps)
  host = b.host
  b.session.close()
  return { tcpPort: b.tcpPort }
}

const MIB = 100

describe('server tunnel (host TCP → enclave vsock)', () => {
  it(`carries ${MIB} MiB each way byte-identical`, { timeout: 120_000 }, async () => {
    const { tcpPort } = await bridged()
    // The enclave hashes what it receives and sends its own stream back at the same time.
    let enclaveReceived: Promise<{ hash: string; bytes: number }> | undefined
    servers.push(
      await enclaveServer(world, 5001, (socket) => {
        enclaveReceived = hashUntilEnd(socket)
        void writeAll(socket, pattern(MIB, 2))
      }),
    )
    const client = await connect(`tcp://127.0.0.1:${tcpPort}`, { allowHalfOpen: true })
    const downloaded = hashUntilEnd(client)
    await writeAll(client, pattern(MIB, 1))
    const down = await downloaded
    const up = await (enclaveReceived as Promise<{ hash: string; bytes: number }>)
    expect(up).toEqual({ hash: sha256Of(pattern(MIB, 1)), bytes: MIB * 1024 * 1024 })
    expect(down).toEqual({ hash: sha256Of(pattern(MIB, 2)), bytes: MIB * 1024 * 1024 })
    const stats = (host as BridgeHost).stats().tunnels.find((t) => t.kind === 'server')
    expect(stats?.total).toBe(1)
  })

  it('carries 500 concurrent connections, each getting its own bytes back', { timeout: 60_000 }, async () => {
    const { tcpPort } = await bridged()
    servers.push(await enclaveServer(world, 5001, echo))
    const N = 500
    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const socket = await connect(`tcp://127.0.0.1:${tcpPort}`, { allowHalfOpen: true })
        const payload = Buffer.from(`connection ${i} `.repeat(64))
        const got = hashUntilEnd(socket)
        socket.end(payload)
        const { hash, bytes } = await got
        return hash === sha256Of([payload]) && bytes === payload.length
      }),
    )
    expect(results.filter(Boolean)).toHaveLength(N)
    const stats = (host as BridgeHost).stats().tunnels.find((t) => t.kind === 'server')
    expect(stats?.total).toBe(N)
    expect(stats?.errors).toBe(0)
  })

  it('refuses connections beyond maxConnectionsPerTunnel instead of growing without bound', async () => {
    const { tcpPort } = await bridged({ maxConnectionsPerTunnel: 2 })
    const held: Socket[] = []
    servers.push(await enclaveServer(world, 5001, (s) => held.push(s)))
    const a = await connect(`tcp://127.0.0.1:${tcpPort}`)
    const b = await connect(`tcp://127.0.0.1:${tcpPort}`)
    const c = await connect(`tcp://127.0.0.1:${tcpPort}`)
    c.on('error', () => {})
    c.resume()
    await new Promise((resolve) => c.once('end', resolve))
    expect(a.destroyed || b.destroyed).toBe(false)
    for (const s of [a, b, ...held]) s.destroy()
  })
})

describe('client tunnel (enclave → host TCP)', () => {
  it(`carries ${MIB} MiB each way byte-identical`, { timeout: 120_000 }, async () => {
    await bridged()
    let received: Promise<{ hash: string; bytes: number }> | undefined
    const { port } = await tcpServer((socket) => {
      received = hashUntilEnd(socket)
      void writeAll(socket, pattern(MIB, 4))
    })
    const socket = await dialThroughBridge('127.0.0.1', port, { port: 5002, dev: world.enclaveDev })
    socket.allowHalfOpen = true
    const downloaded = hashUntilEnd(socket)
    await writeAll(socket, pattern(MIB, 3))
    const down = await downloaded
    const up = await (received as Promise<{ hash: string; bytes: number }>)
    expect(up).toEqual({ hash: sha256Of(pattern(MIB, 3)), bytes: MIB * 1024 * 1024 })
    expect(down).toEqual({ hash: sha256Of(pattern(MIB, 4)), bytes: MIB * 1024 * 1024 })
  })

  it('a dial to a dead port gives the enclave a clear error naming the cause', async () => {
    await bridged()
    // Held for the whole test: nothing can start listening on it in between.
    const dead = await holdDeadPort()
    releases.push(dead.release)
    const err = await dialThroughBridge('127.0.0.1', dead.port, { port: 5002, dev: world.enclaveDev }).catch(
      (e) => e,
    )
    expect(err).toBeInstanceOf(DialFailedError)
    expect(err.reason).toBe('ECONNREFUSED')
    expect(err.target).toBe(`127.0.0.1:${dead.port}`)
    expect(err.message).toMatch(/ECONNREFUSED/)
  })

  it('enforces the destination allowlist (deny by default once set)', async () => {
    const { port } = await tcpServer(echo)
    await bridged({ allowDestinations: [`127.0.0.1:${port}`, '*.example.com'] })
    const ok = await dialThroughBridge('127.0.0.1', port, { port: 5002, dev: world.enclaveDev })
    ok.end('ping')
    expect((await hashUntilEnd(ok)).bytes).toBe(4)
    const denied = await dialThroughBridge('127.0.0.1', port + 1 === 65536 ? 1 : port + 1, {
      port: 5002,
      dev: world.enclaveDev,
    }).catch((e) => e)
    expect(denied).toBeInstanceOf(DestinationDeniedError)
    expect(denied.message).toMatch(/allowlist/)
    const deep = await dialThroughBridge('a.b.example.com', 443, { port: 5002, dev: world.enclaveDev }).catch(
      (e) => e,
    )
    expect(deep).toBeInstanceOf(DestinationDeniedError)
    expect((host as BridgeHost).stats().tunnels.find((t) => t.kind === 'client')?.errors).toBe(2)
  })

  it('resolves an allowed name once, refuses it if any answer is loopback/link-local/metadata, dials the checked IP', async () => {
    const { port } = await tcpServer(echo)
    const answers: Record<string, { address: string; family: number }[]> = {
      'metadata.example.com': [{ address: '169.254.169.254', family: 4 }],
      'mixed.example.com': [
        { address: '93.184.216.34', family: 4 },
        { address: '::ffff:127.0.0.1', family: 6 },
      ],
      'v6meta.example.com': [{ address: 'fd00:ec2::254', family: 6 }],
      'local.example.com': [{ address: '127.0.0.1', family: 4 }],
      'named-local.example.com': [{ address: '127.0.0.1', family: 4 }],
    }
    const lookups: string[] = []
    const resolve = async (name: string) => {
      lookups.push(name)
      const found = answers[name]
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' })
      return found
    }
    await bridged(
      { allowDestinations: ['*.example.com', `127.0.0.1:${port}`, 'named-local.example.com'] },
      { resolve },
    )
    const dial = (name: string, p: number) =>
      dialThroughBridge(name, p, { port: 5002, dev: world.enclaveDev }).catch((e) => e)
    for (const name of ['metadata.example.com', 'mixed.example.com', 'v6meta.example.com']) {
      const err = await dial(name, 80)
      expect(err, name).toBeInstanceOf(DestinationDeniedError)
      expect(err.message, name).toMatch(/resolves to .*loopback\/link-local\/metadata/)
    }
    // Allowed by name, but loopback is only for rules that name it: port 80 has no IP rule.
    expect(await dial('local.example.com', 80)).toBeInstanceOf(DestinationDeniedError)
    // `127.0.0.1:<port>` names the IP: the name resolves there and the checked IP is dialled (a
    // second lookup would throw: the fake resolver is the only one that knows these names).
    lookups.length = 0
    const ok = await dialThroughBridge('named-local.example.com', port, { port: 5002, dev: world.enclaveDev })
    ok.end('ping')
    expect((await hashUntilEnd(ok)).bytes).toBe(4)
    expect(lookups).toEqual(['named-local.example.com'])
    const unknown = await dial('nowhere.example.com', 443)
    expect(unknown).toBeInstanceOf(DialFailedError)
    expect(unknown.reason).toBe('ENOTFOUND')
  })

  it('answers a malformed target line with an error instead of dialing', async () => {
    await bridged()
    const socket = await connect('vsock://3:5002', { dev: world.enclaveDev })
    socket.write('no-port-here\n')
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    await new Promise((resolve) => socket.once('end', resolve))
    socket.destroy()
    const answer = Buffer.concat(chunks)
    expect(answer[0]).toBe(0x15)
    expect(JSON.parse(answer.subarray(1).toString())).toMatchObject({ code: 'EINVAL' })
  })

  it('understands a Go host that closes silently on a failed dial', async () => {
    world = devWorld()
    // A stand-in for the Go host's client tunnel: reads the target line and closes.
    servers.push(
      await listen('vsock://any:7002', { dev: world.hostDev }, (s: Socket) => {
        s.once('data', () => s.end())
      }),
    )
    const err = await dialThroughBridge('example.com', 443, { port: 7002, dev: world.enclaveDev }).catch(
      (e) => e,
    )
    expect(err).toBeInstanceOf(DialFailedError)
    expect(err.reason).toBe('ECLOSED')
  })
})
