import type { Server, Socket } from 'node:net'
import { makeTempDir } from '@enclave/test-helpers'
import { listen } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import { connectBridge, encodeHeartbeat, newEnclaveId, SocketReader } from '../src/index.js'

// A byte-level stand-in for DIMO's Go host (cmd/enclave-bridge/bridge.go), written from the
// protocol description: our enclave library must work against it unchanged.
let tmp: ReturnType<typeof makeTempDir> | undefined
const servers: Server[] = []

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r))
  tmp?.remove()
})

interface GoHost {
  settings: Promise<Record<string, unknown>>
  heartbeats: string[]
}

async function goHost(dir: string, env: Record<string, string>): Promise<GoHost> {
  let gotSettings!: (s: Record<string, unknown>) => void
  const settings = new Promise<Record<string, unknown>>((resolve) => {
    gotSettings = resolve
  })
  const heartbeats: string[] = []
  let handshakeDone = false
  const server = await listen('vsock://any:5000', { dev: { dir, cid: 3 } }, (socket: Socket) => {
    socket.on('error', () => {})
    const reader = new SocketReader(socket)
    if (!handshakeDone) {
      handshakeDone = true
      void (async () => {
        const ack = await reader.readLine(1024)
        expect([...ack]).toEqual([0x06])
        socket.write(`${JSON.stringify(env)}\n`)
        const line = await reader.readLine(1 << 20)
        gotSettings(JSON.parse(line.toString()))
        socket.end(Buffer.from([0x06, 0x0a]))
      })()
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
  return { settings, heartbeats }
}

describe('against a Go-style host', () => {
  it('hand-shakes, sends Go wire settings, and beats with LF-safe records', async () => {
    tmp = makeTempDir('go-host-')
    const host = await goHost(tmp.path, { APP_ENV: 'prod' })
    const dev = { dir: tmp.path, cid: 16 }
    const hs = await connectBridge({ dev })
    expect(hs.env).toEqual({ APP_ENV: 'prod' })
    const id = newEnclaveId()
    const session = await hs.finish({
      appName: 'compat',
      watchdog: { enclaveId: id, intervalMs: 400 },
      logger: { level: 'info' },
      servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: 8080 }],
      clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }],
    })
    expect(await host.settings).toEqual({
      appName: 'compat',
      watchdog: { enclaveId: id, interval: 400_000_000 },
      logger: { level: 'info' },
      servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: 8080 }],
      // requestTimeout 0 means Go's default of 5 minutes.
      clients: [{ enclaveDialPort: 5002, requestTimeout: 0 }],
    })
    await new Promise<void>((resolve) => session.watchdog?.once('heartbeat', () => resolve()))
    const expected = encodeHeartbeat(id).subarray(0, 16).toString('hex')
    while (host.heartbeats.length === 0) await new Promise((r) => setTimeout(r, 10))
    expect(host.heartbeats[0]).toBe(expected)
    session.close()
  })
})
