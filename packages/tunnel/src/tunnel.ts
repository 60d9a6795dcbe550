import { EventEmitter } from 'node:events'
import type { Server, Socket } from 'node:net'
import { type Logger, silentLogger } from '@enclave/logger'
import {
  connect,
  formatAddress,
  listen,
  parseAddress,
  peerAddressOf,
  serverAddressOf,
  type TransportAddress,
} from '@enclave/vsock-transport'
import {
  ConnectFailedError,
  ConnectTimeoutError,
  ListenFailedError,
  MaxConnectionsError,
  ResolveFailedError,
  ResolveTimeoutError,
  SocketError,
  TunnelClosedError,
  TunnelError,
} from './errors.js'
import {
  type Resolution,
  type ResolvedTunnelOptions,
  resolveTunnelOptions,
  type TunnelOptions,
} from './options.js'
import { type Pipe, pipeConnection } from './pipe.js'

/** Counters of one tunnel. Bytes include connections still open. */
export interface TunnelStats {
  /** Connections being resolved, dialled or relayed now. */
  active: number
  /** Connections accepted since the start (refused ones excluded). */
  total: number
  /** Connections closed on arrival because `maxConnections` were active. */
  refused: number
  /** Connections that ended with an error (resolve, connect, socket, idle timeout, drain). */
  errors: number
  /** Bytes relayed from the inbound side to the target. */
  bytesIn: number
  /** Bytes relayed from the target to the inbound side. */
  bytesOut: number
}

/** How one connection ended. */
export interface ConnectionSummary {
  id: number
  /** Who connected, where the transport knows (`host:port` for TCP). */
  remote: string | undefined
  /** The target, once resolved. */
  target: string | undefined
  bytesIn: number
  bytesOut: number
  durationMs: number
  /** How the bytes moved (see `Pipe.engine`); undefined if the connection never got to relaying. */
  engine: Pipe['engine'] | undefined
  error: TunnelError | undefined
}

/** Events of a tunnel, for logs and metrics. */
export interface TunnelEvents {
  /** A connection was accepted. */
  connection: [{ id: number; remote: string | undefined }]
  /** Its target accepted the outbound connection; relaying starts. */
  connected: [{ id: number; target: string; connectMs: number }]
  /** A connection is over (both sockets closed). */
  connectionClosed: [ConnectionSummary]
  /** A connection was closed on arrival because `maxConnections` were active. */
  refused: [{ remote: string | undefined; error: MaxConnectionsError }]
  /** The tunnel stopped: every connection is closed. */
  closed: [TunnelStats]
}

export type TunnelState = 'listening' | 'closing' | 'closed'

/** A running tunnel. */
export interface Tunnel extends EventEmitter<TunnelEvents> {
  /** Where it listens (for `tcp://127.0.0.1:0`, the port the kernel chose). */
  readonly address: string
  readonly state: TunnelState
  stats(): TunnelStats
  /**
   * Stops accepting, waits up to `drainTimeoutMs` (option or argument) for active connections to
   * finish, then cuts the rest. Idempotent: every call returns the same promise.
   */
  close(options?: { drainTimeoutMs?: number }): Promise<void>
}

interface Connection {
  readonly id: number
  readonly inbound: Socket
  readonly remote: string | undefined
  readonly started: number
  readonly abort: AbortController
  target: string | undefined
  outbound: Socket | undefined
  pipe: Pipe | undefined
}

/**
 * Starts a tunnel: listens on `from` and relays every accepted connection to `to` (an address, or
 * a resolver choosing one per connection). Resolves once listening; rejects with
 * `ListenFailedError` (or `InvalidOptionsError`) otherwise.
 */
export async function forward(options: TunnelOptions, { logger }: { logger?: Logger } = {}): Promise<Tunnel> {
  const resolved = resolveTunnelOptions(options)
  const log = (logger ?? silentLogger).child({ component: 'tunnel' })
  if (isServer(resolved.from)) {
    const server = resolved.from
    return new TunnelImpl(resolved, server, log, (accept) => server.on('connection', accept))
  }
  const label = typeof resolved.from === 'string' ? resolved.from : formatAddress(resolved.from)
  // Hand the handler to listen() itself: a connection accepted before listen() resolves (it may
  // still be doing file-system work in dev mode) is queued, never left without a listener.
  let accept: ((socket: Socket) => void) | undefined
  const early: Socket[] = []
  let server: Server
  try {
    server = await listen(resolved.from, { ...resolved.listen, allowHalfOpen: true }, (socket) => {
      if (accept) accept(socket)
      else early.push(socket)
    })
  } catch (cause) {
    throw new ListenFailedError(label, { cause })
  }
  return new TunnelImpl(resolved, server, log, (handler) => {
    accept = handler
    for (const socket of early.splice(0)) handler(socket)
  })
}

function isServer(value: unknown): value is Server {
  return value instanceof EventEmitter && typeof (value as Server).listen === 'function'
}

class TunnelImpl extends EventEmitter<TunnelEvents> implements Tunnel {
  readonly address: string
  #state: TunnelState = 'listening'
  readonly #options: ResolvedTunnelOptions
  readonly #server: Server
  readonly #log: Logger
  readonly #connections = new Map<number, Connection>()
  readonly #target: string | undefined
  #nextId = 0
  #refused = 0
  #errors = 0
  #closedBytesIn = 0
  #closedBytesOut = 0
  #closing: Promise<void> | undefined
  #idle: (() => void) | undefined

  constructor(
    options: ResolvedTunnelOptions,
    server: Server,
    log: Logger,
    subscribe: (accept: (socket: Socket) => void) => void,
  ) {
    super()
    this.#options = options
    this.#server = server
    this.#log = log
    this.address = describeServer(server, options.from)
    this.#target =
      typeof options.to === 'function'
        ? undefined
        : typeof options.to === 'string'
          ? options.to
          : formatAddress(options.to)
    server.on('error', this.#onServerError)
    subscribe(this.#onConnection)
    log.info({ from: this.address, to: this.#target ?? 'resolver' }, 'tunnel listening')
  }

  get state(): TunnelState {
    return this.#state
  }

  stats(): TunnelStats {
    let bytesIn = this.#closedBytesIn
    let bytesOut = this.#closedBytesOut
    for (const connection of this.#connections.values()) {
      if (!connection.pipe) continue
      const bytes = connection.pipe.bytes()
      bytesIn += bytes.bytesIn
      bytesOut += bytes.bytesOut
    }
    return {
      active: this.#connections.size,
      total: this.#nextId,
      refused: this.#refused,
      errors: this.#errors,
      bytesIn,
      bytesOut,
    }
  }

  close({ drainTimeoutMs = this.#options.drainTimeoutMs }: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#drain(drainTimeoutMs)
    return this.#closing
  }

  async #drain(drainTimeoutMs: number): Promise<void> {
    this.#state = 'closing'
    const serverClosed = new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
    })
    this.#log.info({ active: this.#connections.size, drainTimeoutMs }, 'tunnel draining')
    if (this.#connections.size > 0) {
      const idle = new Promise<void>((resolve) => {
        this.#idle = resolve
      })
      let timer: NodeJS.Timeout | undefined
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), drainTimeoutMs)
      })
      const outcome = await Promise.race([idle, expired])
      clearTimeout(timer)
      if (outcome === 'expired' && this.#connections.size > 0) {
        this.#log.warn({ cut: this.#connections.size, drainTimeoutMs }, 'drain timeout: cutting connections')
        const error = new TunnelClosedError(
          `the tunnel closed and its drain timeout (${drainTimeoutMs} ms) passed`,
        )
        for (const connection of this.#connections.values()) this.#cut(connection, error)
        await idle
      }
    }
    await serverClosed
    this.#state = 'closed'
    const stats = this.stats()
    this.#log.info(stats, 'tunnel closed')
    this.emit('closed', stats)
  }

  #cut(connection: Connection, error: TunnelError): void {
    connection.abort.abort(error)
    if (connection.pipe) connection.pipe.destroy(error)
    else {
      connection.inbound.destroy()
      connection.outbound?.destroy()
    }
  }

  readonly #onServerError = (error: Error): void => {
    this.#log.error({ err: error }, 'listener error')
  }

  readonly #onConnection = (inbound: Socket): void => {
    // Errors before the relay starts are reported through the connection's outcome.
    inbound.on('error', noop)
    const remote = describeRemote(inbound)
    if (this.#state !== 'listening') {
      inbound.destroy()
      return
    }
    if (this.#connections.size >= this.#options.maxConnections) {
      this.#refused += 1
      const error = new MaxConnectionsError(this.#options.maxConnections)
      inbound.destroy()
      this.#log.warn({ remote, limit: this.#options.maxConnections }, 'connection refused: too many active')
      this.emit('refused', { remote, error })
      return
    }
    inbound.allowHalfOpen = true
    this.#nextId += 1
    const connection: Connection = {
      id: this.#nextId,
      inbound,
      remote,
      started: performance.now(),
      abort: new AbortController(),
      target: this.#target,
      outbound: undefined,
      pipe: undefined,
    }
    this.#connections.set(connection.id, connection)
    this.#log.debug({ id: connection.id, remote }, 'connection accepted')
    this.emit('connection', { id: connection.id, remote })
    this.#run(connection).then(
      (result) => this.#finish(connection, result),
      // #run handles its own errors; this is a last guard so no connection can crash the process.
      (error: unknown) =>
        this.#finish(connection, {
          bytesIn: 0,
          bytesOut: 0,
          error: error instanceof TunnelError ? error : new SocketError('inbound', { cause: error }),
        }),
    )
  }

  async #run(connection: Connection): Promise<{ bytesIn: number; bytesOut: number; error?: TunnelError }> {
    const { inbound, abort } = connection
    const onInboundGone = (): void => {
      abort.abort(new SocketError('inbound', { cause: inbound.errored ?? 'the peer closed before relaying' }))
    }
    inbound.once('close', onInboundGone)
    try {
      const resolution = await this.#resolve(connection)
      connection.target =
        typeof resolution.address === 'string' ? resolution.address : formatAddress(resolution.address)
      const outbound = await this.#dial(connection, resolution.address)
      connection.outbound = outbound
      inbound.off('close', onInboundGone)
      if (resolution.preamble && resolution.preamble.length > 0) outbound.write(resolution.preamble)
      const connectMs = Math.round(performance.now() - connection.started)
      this.#log.debug({ id: connection.id, target: connection.target, connectMs }, 'connected')
      this.emit('connected', { id: connection.id, target: connection.target, connectMs })
      connection.pipe = pipeConnection(inbound, outbound, {
        idleTimeoutMs: this.#options.idleTimeoutMs,
        kernelRelay: this.#options.kernelRelay,
      })
      this.#log.debug({ id: connection.id, engine: connection.pipe.engine }, 'relaying')
      inbound.off('error', noop)
      return await connection.pipe.done
    } catch (error) {
      inbound.off('close', onInboundGone)
      inbound.destroy()
      connection.outbound?.destroy()
      const reason =
        abort.signal.aborted && abort.signal.reason instanceof TunnelError ? abort.signal.reason : error
      return {
        bytesIn: 0,
        bytesOut: 0,
        error: reason instanceof TunnelError ? reason : new SocketError('inbound', { cause: reason }),
      }
    }
  }

  async #resolve(connection: Connection): Promise<Resolution> {
    const to = this.#options.to
    if (typeof to !== 'function') return { address: to }
    const timeoutMs = this.#options.resolveTimeoutMs
    const timer = setTimeout(() => connection.abort.abort(new ResolveTimeoutError(timeoutMs)), timeoutMs)
    try {
      const resolution = await Promise.race([
        to(connection.inbound, { id: connection.id, signal: connection.abort.signal }),
        rejectOnAbort(connection.abort.signal),
      ])
      if (!resolution || (typeof resolution.address !== 'string' && typeof resolution.address !== 'object')) {
        throw new ResolveFailedError({ cause: 'the resolver returned no address' })
      }
      return resolution
    } catch (error) {
      if (connection.abort.signal.aborted) throw connection.abort.signal.reason
      throw error instanceof TunnelError ? error : new ResolveFailedError({ cause: error })
    } finally {
      clearTimeout(timer)
    }
  }

  async #dial(connection: Connection, address: string | TransportAddress): Promise<Socket> {
    const timeoutMs = this.#options.connectTimeoutMs
    const label = typeof address === 'string' ? address : formatAddress(address)
    const attempt = new AbortController()
    const onAbort = (): void => attempt.abort(connection.abort.signal.reason)
    connection.abort.signal.addEventListener('abort', onAbort, { once: true })
    const timer = setTimeout(() => attempt.abort(new ConnectTimeoutError(label, timeoutMs)), timeoutMs)
    try {
      const pending = connect(address, {
        ...this.#options.connect,
        signal: attempt.signal,
        allowHalfOpen: true,
      })
      const socket = await Promise.race([pending, rejectOnAbort(attempt.signal)]).catch((error: unknown) => {
        // A connect that completes after we gave up must not leak its socket.
        pending.then((late) => late.destroy(), noop)
        throw error
      })
      return socket
    } catch (error) {
      if (attempt.signal.aborted) throw attempt.signal.reason
      throw new ConnectFailedError(label, { cause: error })
    } finally {
      clearTimeout(timer)
      connection.abort.signal.removeEventListener('abort', onAbort)
    }
  }

  #finish(connection: Connection, result: { bytesIn: number; bytesOut: number; error?: TunnelError }): void {
    this.#connections.delete(connection.id)
    this.#closedBytesIn += result.bytesIn
    this.#closedBytesOut += result.bytesOut
    if (result.error) this.#errors += 1
    const summary: ConnectionSummary = {
      id: connection.id,
      remote: connection.remote,
      target: connection.target,
      bytesIn: result.bytesIn,
      bytesOut: result.bytesOut,
      durationMs: Math.round(performance.now() - connection.started),
      engine: connection.pipe?.engine,
      error: result.error,
    }
    if (result.error) {
      this.#log.warn(
        { id: summary.id, remote: summary.remote, target: summary.target, err: result.error },
        'connection failed',
      )
    } else {
      this.#log.debug(summary, 'connection closed')
    }
    this.emit('connectionClosed', summary)
    if (this.#connections.size === 0) this.#idle?.()
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  const promise = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason)
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
  // Aborts after the race is decided (a drain cutting a relayed connection) are expected.
  promise.catch(noop)
  return promise
}

function describeServer(server: Server, from: string | TransportAddress | Server): string {
  // The transport knows what it bound, including the port the kernel chose for port 0 (vsock too).
  const bound = serverAddressOf(server)
  if (bound) return formatAddress(bound)
  let address: ReturnType<Server['address']> = null
  try {
    address = server.address()
  } catch {
    // A vsock listener wrapped in a TCP handle cannot always describe itself.
  }
  if (isServer(from)) {
    if (typeof address === 'string') return `unix://${address}`
    if (address?.port !== undefined) return formatTcp(address.address, address.family, address.port)
    return 'unknown'
  }
  const parsed = parseAddress(from)
  if (parsed.scheme === 'tcp' && address && typeof address === 'object' && address.port !== undefined) {
    return formatTcp(address.address, address.family, address.port)
  }
  return formatAddress(parsed)
}

function formatTcp(host: string, family: string, port: number): string {
  return `tcp://${family === 'IPv6' ? `[${host}]` : host}:${port}`
}

function describeRemote(socket: Socket): string | undefined {
  if (socket.remoteAddress === undefined) {
    // vsock peers: libuv cannot decode their address, the transport can (CID and port).
    try {
      const peer = peerAddressOf(socket)
      return peer ? formatAddress(peer) : undefined
    } catch {
      return undefined
    }
  }
  const host = socket.remoteFamily === 'IPv6' ? `[${socket.remoteAddress}]` : socket.remoteAddress
  return `${host}:${socket.remotePort}`
}

function noop(): void {}
