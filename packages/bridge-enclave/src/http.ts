import {
  type AgentOptions,
  type ClientRequestArgs,
  Agent as HttpAgent,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http'
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions, type RequestOptions } from 'node:https'
import type { Server, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls'
import { type DevModeOptions, listen } from '@enclave/vsock-transport'
import { Agent as UndiciAgent } from 'undici'
import { type DialOptions, dialThroughBridge } from './dial.js'
import { readProxyHeader } from './proxy-protocol.js'

/** A running `serveHttp`. */
export interface HttpOnVsock {
  /** The vsock listener (its `address()` names the port). */
  readonly listener: Server
  /**
   * Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes what is left
   * (idle keep-alive connections at once).
   */
  close(options?: { graceMs?: number }): Promise<void>
}

/**
 * Serves an `http.Server` (or `https.Server`, express, fastify's server...) on a vsock port inside
 * the enclave: the host's server tunnel for that port delivers the connections.
 */
export async function serveHttp(
  server: HttpServer,
  {
    port,
    dev,
    signal,
    proxyProtocol = false,
  }: {
    port: number
    dev?: DevModeOptions | false
    signal?: AbortSignal
    /**
     * Expect a PROXY v1 header on each connection (the host's `proxyProtocol` option) and show the
     * TCP client as `req.socket.remoteAddress` / `remotePort`. Connections without one are closed.
     */
    proxyProtocol?: boolean
  },
): Promise<HttpOnVsock> {
  // Node tracks an http.Server's connections only once it listens itself, which this one never
  // does: count in-flight requests per socket here, so close() can end idle connections.
  const inFlight = new Map<Socket, number>()
  let closing = false
  const settle = (socket: Socket): void => {
    if (closing && (inFlight.get(socket) ?? 0) === 0) socket.destroy()
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1)
    res.once('close', () => {
      inFlight.set(socket, (inFlight.get(socket) ?? 1) - 1)
      settle(socket)
    })
  }
  server.on('request', onRequest)
  const listener = await listen(
    `vsock://any:${port}`,
    { ...(dev !== undefined ? { dev } : {}), ...(signal ? { signal } : {}) },
    (socket: Socket) => {
      inFlight.set(socket, 0)
      socket.once('close', () => inFlight.delete(socket))
      if (!proxyProtocol) return void server.emit('connection', socket)
      socket.on('error', () => {})
      readProxyHeader(socket).then(
        (header) => {
          if (header.family !== 'UNKNOWN') {
            // Own properties shadow net.Socket's getters: req.socket.remoteAddress is the client.
            Object.defineProperties(socket, {
              remoteAddress: { value: header.source },
              remotePort: { value: header.sourcePort },
              remoteFamily: { value: header.family === 'TCP4' ? 'IPv4' : 'IPv6' },
            })
          }
          server.emit('connection', socket)
        },
        () => socket.destroy(),
      )
    },
  )
  return {
    listener,
    close: ({ graceMs = 5000 } = {}) =>
      new Promise<void>((resolve) => {
        closing = true
        const timer = setTimeout(() => {
          for (const socket of inFlight.keys()) socket.destroy()
        }, graceMs)
        // The listener's callback runs once every connection it accepted is gone.
        listener.close(() => {
          clearTimeout(timer)
          server.off('request', onRequest)
          resolve()
        })
        for (const socket of inFlight.keys()) settle(socket)
      }),
  }
}

/** Where the bridge's HTTP tunnels dial: the dial options without a per-request signal. */
export type BridgeTunnelOptions = Omit<DialOptions, 'signal'>

/** An `http.Agent` whose connections go out through a client tunnel. */
export class BridgeHttpAgent extends HttpAgent {
  readonly #tunnel: BridgeTunnelOptions
  constructor(tunnel: BridgeTunnelOptions, options?: AgentOptions) {
    super(options)
    this.#tunnel = tunnel
  }
  override createConnection(
    options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): undefined {
    const host = options.hostname ?? options.host ?? 'localhost'
    dialThroughBridge(host, Number(options.port ?? 80), this.#tunnel).then(
      (socket) => callback?.(null, socket),
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    )
    return undefined
  }
}

function tlsOver(socket: Socket, options: ConnectionOptions, host: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ ...options, socket, servername: options.servername ?? host })
    tls.once('secureConnect', () => {
      tls.off('error', reject)
      resolve(tls)
    })
    tls.once('error', reject)
  })
}

/**
 * An `https.Agent` whose connections go out through a client tunnel. TLS runs inside the enclave:
 * the host relays ciphertext only.
 */
export class BridgeHttpsAgent extends HttpsAgent {
  readonly #tunnel: BridgeTunnelOptions
  constructor(tunnel: BridgeTunnelOptions, options?: HttpsAgentOptions) {
    super(options)
    this.#tunnel = tunnel
  }
  override createConnection(
    options: RequestOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): undefined {
    const host = options.hostname ?? options.host ?? 'localhost'
    dialThroughBridge(host, Number(options.port ?? 443), this.#tunnel)
      .then((raw) => tlsOver(raw, { ...(options as ConnectionOptions), host }, host))
      .then(
        (socket) => callback?.(null, socket),
        (err: Error) => callback?.(err, undefined as unknown as Duplex),
      )
    return undefined
  }
}

/** Options of `createBridgeDispatcher`: undici Agent options, plus TLS options for https URLs. */
export type BridgeDispatcherOptions = Omit<UndiciAgent.Options, 'connect'> & {
  /** For https URLs (CA, client certificate...); the server name comes from the URL. */
  tlsOptions?: ConnectionOptions
}

/**
 * An undici dispatcher (for `fetch(url, { dispatcher })`, `request`, or `setGlobalDispatcher`)
 * whose connections go out through a client tunnel; https URLs get TLS inside the enclave.
 */
export function createBridgeDispatcher(
  tunnel: BridgeTunnelOptions,
  options: BridgeDispatcherOptions = {},
): UndiciAgent {
  const { tlsOptions, ...agentOptions } = options
  return new UndiciAgent({
    ...agentOptions,
    connect: (opts, callback) => {
      const secure = opts.protocol === 'https:'
      const port = opts.port ? Number(opts.port) : secure ? 443 : 80
      dialThroughBridge(opts.hostname, port, tunnel)
        .then((raw) =>
          secure
            ? tlsOver(
                raw,
                {
                  ALPNProtocols: ['http/1.1'],
                  ...tlsOptions,
                  ...(opts.servername ? { servername: opts.servername } : {}),
                },
                opts.hostname,
              )
            : raw,
        )
        .then(
          (socket) => callback(null, socket),
          (err: Error) => callback(err, null),
        )
    },
  })
}
