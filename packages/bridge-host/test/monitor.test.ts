import { connectBridge } from '@enclave/bridge-enclave'
import { afterEach, describe, expect, it } from 'vitest'
import { type BridgeHost, startMonitor } from '../src/index.js'
import { devWorld, settings, startHost } from './helpers.js'

let world: ReturnType<typeof devWorld>
let host: BridgeHost | undefined
let monitor: import('node:http').Server | undefined

afterEach(async () => {
  await new Promise((r) => (monitor ? monitor.close(r) : r(undefined)))
  monitor = undefined
  await host?.close({ drainTimeoutMs: 0 })
  host = undefined
  world?.remove()
})

describe('monitoring server', () => {
  it('/healthz reflects the session; /metrics has handshakes, tunnels and heartbeat age', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    monitor = await startMonitor(host, { port: 0 })
    const base = `http://127.0.0.1:${(monitor.address() as { port: number }).port}`
    let res = await fetch(`${base}/healthz`)
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ state: 'waiting' })

    const hs = await connectBridge({ dev: world.enclaveDev })
    const session = await hs.finish(
      settings({ appName: 'mon', clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }] }),
    )
    res = await fetch(`${base}/healthz`)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ state: 'running', appName: 'mon' })

    const text = await (await fetch(`${base}/metrics`)).text()
    expect(text).toMatch(/enclave_bridge_handshakes_total\{result="completed"\} 1/)
    expect(text).toMatch(/enclave_bridge_state\{state="running"\} 1/)
    expect(text).toMatch(/enclave_bridge_tunnel_connections_active\{kind="client",port="5002"\} 0/)
    expect(text).toMatch(/enclave_bridge_heartbeat_age_seconds \d/)
    expect((await fetch(`${base}/nope`)).status).toBe(404)
    session.close()
  })
})
