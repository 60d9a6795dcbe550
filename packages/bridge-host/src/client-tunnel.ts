import type { Server, Socket } from 'node:net'
import { isIP } from 'node:net'
import {
  ACK,
  CLIENT_DIAL_TIMEOUT_MS,
  type ClientTunnelSettings,
  type Logger,
  MAX_TARGET_LINE_BYTES,
  NAK_BYTE,
  ReadFailure,
  SocketReader,
} from '@enclave/bridge-enclave'
import { type Pipe, pipeConnection } from '@enclave/tunnel'
import { connect, type DevModeOptions, listen } from '@enclave/vsock-transport'
import { checkDestination, type DestinationPolicy, type ResolveHost } from './destinations.js'
import { TunnelFailedError } from './errors.js'

export interface ClientTunnelStats {
  active: number
  total: number
  errors: number
  denied: number
  bytesIn: number
  bytesOut: number
}

/** Parses `host:port` (IPv6 in brackets) as Go's net.SplitHostPort does; undefined if malformed. */
export function parseTarget(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.%a-zA-Z]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text)
  if (!m) return undefined
  const host = (m[1] ?? m[2]) as string
  const port = Number(m[3])
  if (port < 1 || port > 65535) return undefined
  if (m[1] !== undefined && isIP(host) !== 6) return undefined
  return { host, port }
}

export interface ClientTunnelOptions {
  settings: ClientTunnelSettings
  listenCid: number | 'any'
  policy: DestinationPolicy | undefined
  maxConnections: number
  idleTimeoutMs: number
  dev: DevModeOptions | false | undefined
  logger: Logger
  /** Name resolution for allowlist checks (default: dns.lookup, all answers). */
  resolve?: ResolveHost
}

/**
 * One client tunnel: listens on vsock `enclaveDialPort`; per connection reads `host:port\n`, checks
 * the egress allowlist, dials (10 s, bounded by requestTimeout), answers ACK and relays, or answers
 * NAK + `{"code","message"}` so the enclave learns why (Go's host closes silently).
 */
export class ClientTunnel {
  readonly port: number
  readonly #server: Server
  readonly #options: ClientTunnelOptions
  readonly #log: Logger
  readonly #pipes = new Set<Pipe>()
  readonly #pending = new Set<Socket>()
  readonly #stats: ClientTunnelStats = { active: 0, total: 0, errors: 0, denied: 0, bytesIn: 0, bytesOut: 0 }

  /** Counters; bytes include connections still open. */
  get stats(): ClientTunnelStats {
    let bytesIn = this.#stats.bytesIn
    let bytesOut = this.#stats.bytesOut
    for (const p of this.#pipes) {
      const b = p.bytes()
      bytesIn += b.bytesIn
      bytesOut += b.bytesOut
    }
    return { ...this.#stats, bytesIn, bytesOut }
  }

  private constructor(server: Server, options: ClientTunnelOptions) {
    this.#server = server
    this.#options = options
    this.port = options.settings.enclaveDialPort
    this.#log = options.logger.child({ tunnel: 'client', port: this.port })
    server.on('connection', (socket: Socket) => void this.#handle(socket))
  }

  static async start(options: ClientTunnelOptions): Promise<ClientTunnel> {
    const cid = options.listenCid === 'any' ? 'any' : String(options.listenCid)
    const address = `vsock://${cid}:${options.settings.enclaveDialPort}`
    try {
      const server = await listen(address, {
        allowHalfOpen: true,
        ...(options.dev !== undefined ? { dev: options.dev } : {}),
      })
      return new ClientTunnel(server, options)
    } catch (err) {
      throw new TunnelFailedError(`client tunnel cannot listen on ${address}: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }

  #refuse(socket: Socket, code: string, message: string): void {
    this.#stats.errors++
    this.#log.warn({ code, reason: message }, 'client tunnel request refused')
    socket.end(
      Buffer.concat([Buffer.from([NAK_BYTE]), Buffer.from(`${JSON.stringify({ code, message })}\n`)]),
    )
    // The enclave closes once it has read the answer; one that does not is cut shortly after.
    setTimeout(() => socket.destroy(), 2000).unref()
  }

  async #handle(inbound: Socket): Promise<void> {
    inbound.on('error', () => {})
    if (this.#stats.active >= this.#options.maxConnections) {
      this.#refuse(
        inbound,
        'EBUSY',
        `the client tunnel carries ${this.#options.maxConnections} connections already`,
      )
      return
    }
    this.#stats.active++
    this.#stats.total++
    this.#pending.add(inbound)
    const reader = new SocketReader(inbound, { highWaterMark: MAX_TARGET_LINE_BYTES + 1 })
    let outbound: Socket | undefined
    try {
      let line: Buffer
      try {
        line = await reader.readLine(MAX_TARGET_LINE_BYTES, {
          timeoutMs: CLIENT_DIAL_TIMEOUT_MS,
          what: 'the target line',
        })
      } catch (err) {
        const reason = err instanceof ReadFailure ? err.reason : 'socket-error'
        if (reason === 'closed') return void inbound.destroy()
        return this.#refuse(inbound, 'EINVAL', (err as Error).message)
      }
      const text = line.toString('latin1').replace(/\r$/, '')
      const target = parseTarget(text)
      if (!target) return this.#refuse(inbound, 'EINVAL', `"${text}" is not host:port`)
      let dialHost = target.host
      if (this.#options.policy) {
        // Resolve once, check every answer, dial the checked address: never the name again.
        const check = await checkDestination(
          this.#options.policy,
          target.host,
          target.port,
          this.#options.resolve,
        )
        if (!check.ok) {
          if (check.code === 'EDENIED') this.#stats.denied++
          return this.#refuse(inbound, check.code, check.message)
        }
        dialHost = check.address
      }
      if (inbound.destroyed) return
      const timeoutMs = Math.min(CLIENT_DIAL_TIMEOUT_MS, this.#options.settings.requestTimeoutMs)
      const address =
        isIP(dialHost) === 6 ? `tcp://[${dialHost}]:${target.port}` : `tcp://${dialHost}:${target.port}`
      try {
        outbound = await connect(address, { timeoutMs, allowHalfOpen: true })
      } catch (err) {
        const cause = (err as { cause?: NodeJS.ErrnoException }).cause
        const code = cause?.code ?? (err as { code?: string }).code ?? 'ECONNECT'
        return this.#refuse(inbound, code.startsWith('ENCLAVE_') ? 'ECONNECT' : code, (err as Error).message)
      }
      if (inbound.destroyed) {
        outbound.destroy()
        return
      }
      inbound.write(ACK)
      const rest = reader.release()
      if (rest.length > 0) outbound.write(rest)
      this.#pending.delete(inbound)
      const pipe = pipeConnection(inbound, outbound, { idleTimeoutMs: this.#options.idleTimeoutMs })
      this.#pipes.add(pipe)
      const result = await pipe.done
      this.#pipes.delete(pipe)
      this.#stats.bytesIn += result.bytesIn
      this.#stats.bytesOut += result.bytesOut
      if (result.error) this.#stats.errors++
    } finally {
      this.#pending.delete(inbound)
      this.#stats.active--
    }
  }

  /** Stops accepting; waits up to `drainTimeoutMs` for relays to end, then cuts them. */
  async close(drainTimeoutMs: number): Promise<void> {
    // The callback runs once every connection is gone, so wait for it only after the drain.
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    for (const s of this.#pending) s.destroy()
    if (this.#pipes.size > 0 && drainTimeoutMs > 0) {
      const all = Promise.all([...this.#pipes].map((p) => p.done))
      await Promise.race([all, new Promise((r) => setTimeout(r, drainTimeoutMs).unref())])
    }
    for (const p of this.#pipes) p.destroy()
    await closed
  }
}
