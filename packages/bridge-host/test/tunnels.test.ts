import { createServer, type Server, type Socket } from 'node:net'
import {
  connectBridge,
  DestinationDeniedError,
  DialFailedError,
  dialThroughBridge,
} from '@enclave/bridge-enclave'
import { connect, listen } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import type { BridgeHost, BridgeHostOptions } from '../src/index.js'
import {
  close,
  devWorld,
  ENCLAVE_CID,
  echo,
  enclaveServer,
  hashUntilEnd,
  pattern,
  settings,
  sha256Of,
  startHost,
  writeAll,
} from './helpers.js'

let world: ReturnType<typeof devWorld>
let host: BridgeHost | undefined
const servers: Server[] = []

afterEach(async () => {
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

async function freePort(): Promise<number> {
  const { server, port } = await tcpServer(() => {})
  await close(server)
  servers.splice(servers.indexOf(server), 1)
  return port
}

/** Host + a hand-shaken enclave with one server tunnel (5001 → TCP) and one client tunnel (5002). */
async function bridged(options: BridgeHostOptions = {}): Promise<{ tcpPort: number }> {
  world = devWorld()
  ;({ host } = await startHost(world, options))
  const tcpPort = await freePort()
  const hs = await connectBridge({ dev: world.enclaveDev })
  const session = await hs.finish(
    settings({
      servers: [{ enclaveCid: ENCLAVE_CID, enclaveListenPort: 5001, bridgeTcpPort: tcpPort }],
      clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }],
    }),
    { watchdog: false },
  )
  session.close()
  return { tcpPort }
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
    const dead = await freePort()
    const err = await dialThroughBridge('127.0.0.1', dead, { port: 5002, dev: world.enclaveDev }).catch(
      (e) => e,
    )
    expect(err).toBeInstanceOf(DialFailedError)
    expect(err.reason).toBe('ECONNREFUSED')
    expect(err.target).toBe(`127.0.0.1:${dead}`)
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
