import type { Server, Socket } from 'node:net'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { listen } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type BridgeSession,
  connectBridge,
  encodeHeartbeat,
  newEnclaveId,
  SocketReader,
} from '../src/index.js'

// A byte-level stand-in for DIMO's Go host (cmd/enclave-bridge/bridge.go), written from the
// protocol description: our enclave library must work against it unchanged.
let tmp: ReturnType<typeof makeTempDir> | undefined
const servers: Server[] = []
const accepted: Socket[] = []
const sessions: BridgeSession[] = []

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close()
  for (const s of accepted.splice(0)) s.destroy()
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
  tmp?.remove()
})

interface GoHost {
  /** The first line the enclave sent (without LF): Go requires exactly 0x06. */
  ack: Promise<Buffer>
  /** The settings JSON; rejects if the handshake broke off. */
  settings: Promise<Record<string, unknown>>
  heartbeats: string[]
}

async function goHost(dir: string, env: Record<string, string>): Promise<GoHost> {
  let gotAck!: (line: Buffer) => void
  let gotSettings!: (s: Record<string, unknown>) => void
  let broken!: (err: unknown) => void
  const ack = new Promise<Buffer>((resolve) => {
    gotAck = resolve
  })
  const settings = new Promise<Record<string, unknown>>((resolve, reject) => {
    gotSettings = resolve
    broken = reject
  })
  // The test awaits these; a rejection it never reaches must not go unhandled.
  settings.catch(() => {})
  const heartbeats: string[] = []
  let handshakeDone = false
  const server = await listen('vsock://any:5000', { dev: { dir, cid: 3 } }, (socket: Socket) => {
    socket.on('error', () => {})
    accepted.push(socket)
    const reader = new SocketReader(socket)
    if (!handshakeDone) {
      handshakeDone = true
      // Outcomes go to promises the test body asserts on (an expect here would be lost).
      void (async () => {
        const first = await reader.readLine(1024, { timeoutMs: 20_000 })
        gotAck(first)
        socket.write(`${JSON.stringify(env)}\n`)
        const line = await reader.readLine(1 << 20, { timeoutMs: 20_000 })
        gotSettings(JSON.parse(line.toString()))
        socket.end(Buffer.from([0x06, 0x0a]))
      })().catch(broken)
      return
    }
    // Every later connection: the watchdog. The Go host reads LF-terminated lines; a new-style
    // id without 0x0A keeps that working.
    void (async () => {
      const s = await settings
      const id = (s.watchdog as { enclaveId: string }).enclaveId
      const timer = setInterval(() => socket.write(encodeHeartbeat(id)), 50)
      socket.once('close', () => clearInterval(timer))
      try {
        for (;;) heartbeats.push((await reader.readLine(64)).toString('hex'))
      } catch {
        clearInterval(timer)
      }
    })()
  })
  servers.push(server)
  return { ack, settings, heartbeats }
}

describe('against a Go-style host', () => {
  it('hand-shakes, sends Go wire settings, and beats with LF-safe records', async () => {
    tmp = makeTempDir('go-host-')
    const host = await goHost(tmp.path, { APP_ENV: 'prod' })
    const dev = { dir: tmp.path, cid: 16 }
    const hs = await connectBridge({ dev })
    expect([...(await host.ack)]).toEqual([0x06])
    expect(hs.env).toEqual({ APP_ENV: 'prod' })
    const id = newEnclaveId()
    // Roomy: the test is about the wire, not timeouts (the fake host beats every 50 ms anyway).
    const session = await hs.finish({
      appName: 'compat',
      watchdog: { enclaveId: id, intervalMs: 10_000 },
      logger: { level: 'info' },
      servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: 8080 }],
      clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }],
    })
    expect(await host.settings).toEqual({
      appName: 'compat',
      watchdog: { enclaveId: id, interval: 10_000_000_000 },
      logger: { level: 'info' },
      servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: 8080 }],
      // requestTimeout 0 means Go's default of 5 minutes.
      clients: [{ enclaveDialPort: 5002, requestTimeout: 0 }],
    })
    sessions.push(session)
    await new Promise<void>((resolve) => session.watchdog?.once('heartbeat', () => resolve()))
    const expected = encodeHeartbeat(id).subarray(0, 16).toString('hex')
    await waitFor(() => host.heartbeats.length > 0, { what: "the enclave's first heartbeat at the Go host" })
    expect(host.heartbeats[0]).toBe(expected)
  })
})
