import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Registry } from 'prom-client'
import type { BridgeHost, BridgeHostState } from './host.js'

const STATES: readonly BridgeHostState[] = ['idle', 'waiting', 'running', 'failed', 'closing', 'closed']

/**
 * Prometheus metrics of one bridge host, in a registry of its own (never the global one): read
 * from `host.stats()` at scrape time, so nothing is counted twice.
 */
export function createBridgeMetrics(host: BridgeHost): Registry {
  const registry = new Registry()
  const setCounter = (c: Counter<string>, labels: Record<string, string>, value: number): void => {
    c.inc(labels, value)
  }
  new Gauge({
    name: 'enclave_bridge_state',
    help: 'Bridge host state (1 for the current state)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const { state } = host.stats()
      for (const s of STATES) this.set({ state: s }, s === state ? 1 : 0)
    },
  })
  new Counter({
    name: 'enclave_bridge_handshakes_total',
    help: 'Enclave handshakes by result',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset()
      const { handshakes } = host.stats()
      setCounter(this, { result: 'completed' }, handshakes.completed)
      setCounter(this, { result: 'failed' }, handshakes.failed)
    },
  })
  new Gauge({
    name: 'enclave_bridge_heartbeat_age_seconds',
    help: 'Seconds since the last valid heartbeat from the enclave (absent without a session)',
    registers: [registry],
    collect() {
      this.reset()
      const { session } = host.stats()
      if (session) this.set(session.heartbeatAgeMs / 1000)
    },
  })
  new Gauge({
    name: 'enclave_bridge_tunnel_connections_active',
    help: 'Connections carried now, per tunnel',
    labelNames: ['kind', 'port'],
    registers: [registry],
    collect() {
      this.reset()
      for (const t of host.stats().tunnels) this.set({ kind: t.kind, port: String(t.port) }, t.active)
    },
  })
  new Counter({
    name: 'enclave_bridge_tunnel_connections_total',
    help: 'Connections accepted, per tunnel (current session)',
    labelNames: ['kind', 'port'],
    registers: [registry],
    collect() {
      this.reset()
      for (const t of host.stats().tunnels) setCounter(this, { kind: t.kind, port: String(t.port) }, t.total)
    },
  })
  new Counter({
    name: 'enclave_bridge_tunnel_errors_total',
    help: 'Connections that ended in an error, per tunnel (current session)',
    labelNames: ['kind', 'port'],
    registers: [registry],
    collect() {
      this.reset()
      for (const t of host.stats().tunnels) setCounter(this, { kind: t.kind, port: String(t.port) }, t.errors)
    },
  })
  new Counter({
    name: 'enclave_bridge_tunnel_bytes_total',
    help: 'Bytes relayed per tunnel; direction "in" is towards the target',
    labelNames: ['kind', 'port', 'direction'],
    registers: [registry],
    collect() {
      this.reset()
      for (const t of host.stats().tunnels) {
        setCounter(this, { kind: t.kind, port: String(t.port), direction: 'in' }, t.bytesIn)
        setCounter(this, { kind: t.kind, port: String(t.port), direction: 'out' }, t.bytesOut)
      }
    },
  })
  new Counter({
    name: 'enclave_bridge_log_lines_total',
    help: 'Enclave log lines written to stdout',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(host.stats().logs.lines)
    },
  })
  new Counter({
    name: 'enclave_bridge_log_lines_truncated_total',
    help: 'Enclave log lines cut at the length limit',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(host.stats().logs.truncatedLines)
    },
  })
  return registry
}

/** Whether the bridge is healthy: a session is running and its heartbeats are fresh. */
export function healthOf(host: BridgeHost): { healthy: boolean; body: Record<string, unknown> } {
  const { state, session } = host.stats()
  const fresh = session !== undefined && session.heartbeatAgeMs <= session.intervalMs
  return {
    healthy: state === 'running' && fresh,
    body: {
      state,
      ...(session
        ? { appName: session.appName, enclaveId: session.enclaveId, heartbeatAgeMs: session.heartbeatAgeMs }
        : {}),
    },
  }
}

/**
 * The monitoring server: `GET /metrics` (Prometheus text), `GET /healthz` (200 when a session runs
 * with fresh heartbeats, else 503; JSON body with the state), `GET /` (200, like the Go host).
 */
export async function startMonitor(
  host: BridgeHost,
  { port, bindHost = '127.0.0.1' }: { port: number; bindHost?: string },
): Promise<Server> {
  const registry = createBridgeMetrics(host)
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      )
    } else if (path === '/healthz') {
      const { healthy, body } = healthOf(host)
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    } else if (path === '/') {
      res.writeHead(200).end()
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, bindHost, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return server
}
