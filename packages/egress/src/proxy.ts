import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { pipeConnection, silentLogger } from '@enclave/tunnel'
import { tunnelOpener } from './client.js'
import { DialFailedError, EgressError, HostUnreachableError, InvalidOptionsError } from './errors.js'
import {
  type Context,
  type EgressProxyOptions,
  integer,
  PROXY_DEFAULTS,
  resolveTunnelSettings,
} from './options.js'
import { compilePolicy } from './policy.js'

/** A running in-enclave egress proxy. */
export interface EgressProxy {
  readonly server: Server
  /** The TCP port it listens on (127.0.0.1). */
  readonly port: number
  /** http_proxy and friends for the app. */
  readonly env: Readonly<Record<string, string>>
  close(): Promise<void>
}

/** The proxy environment the app gets: both cases, as curl and most runtimes read one or the other. */
export function proxyEnv(port: number): Readonly<Record<string, string>> {
  const url = `http://127.0.0.1:${port}/`
  const noProxy = 'localhost,127.0.0.1,::1'
  return Object.freeze({
    http_proxy: url,
    https_proxy: url,
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    no_proxy: noProxy,
    NO_PROXY: noProxy,
  })
}

const AUTHORITY = /^(\[[^\]]*\]|[^:@/[\]]+):(\d{1,5})$/
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

function endToEnd(headers: IncomingMessage['headers']): OutgoingHttpHeaders {
  const listed = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase()),
  )
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !listed.has(name)) out[name] = value
  }
  return out
}

/**
 * Starts the HTTP proxy inside the enclave on 127.0.0.1: CONNECT tunnels and absolute-URI
 * requests, each carried over its own vsock connection to the host half. Refusals answer 403 with
 * the rule, dial failures 502, timeouts 504; the body is one line of text naming the cause.
 */
export async function startEgressProxy(
  options: EgressProxyOptions,
  { logger = silentLogger }: Context = {},
): Promise<EgressProxy> {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionsError('startEgressProxy() needs an options object with `policy`')
  const policy = compilePolicy(options.policy)
  const port = integer('port', options.port ?? PROXY_DEFAULTS.port, 0, 65535)
  const settings = resolveTunnelSettings(options)
  const { hostAddress, idleTimeoutMs, maxConnections } = settings
  const log = logger.child({ component: 'egress-proxy' })
  let active = 0
  // CONNECT sockets leave the HTTP server's bookkeeping once upgraded: close() cuts them here.
  const tunnels = new Set<Socket>()

  const openTunnel = tunnelOpener({ policy, ...settings })

  const asEgressError = (error: unknown): EgressError =>
    error instanceof EgressError ? error : new HostUnreachableError(hostAddress, { cause: error })

  const server = createServer({ requireHostHeader: false })

  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    const socket = client as Socket
    socket.on('error', () => {})
    tunnels.add(socket)
    socket.once('close', () => tunnels.delete(socket))
    const reject = (status: number, message: string): void => {
      const body = `${message}\n`
      socket.end(
        `HTTP/1.1 ${status} ${statusText(status)}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      )
    }
    if (active >= maxConnections) return reject(503, 'egress proxy at its connection limit')
    const match = AUTHORITY.exec(req.url ?? '')
    if (!match) return reject(400, 'CONNECT needs host:port (e.g. example.com:443)')
    const port = Number(match[2])
    if (port < 1 || port > 65535) return reject(400, 'CONNECT port must be from 1 to 65535')
    active++
    socket.pause()
    openTunnel(match[1]!, port).then(
      ({ socket: upstream, rest }) => {
        if (socket.destroyed) {
          upstream.destroy()
          active--
          return
        }
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        if (rest.length > 0) socket.write(rest)
        if (head.length > 0) upstream.write(head)
        void pipeConnection(socket, upstream, { idleTimeoutMs }).done.then(() => {
          active--
        })
      },
      (error: unknown) => {
        active--
        const failure = asEgressError(error)
        log.info({ target: req.url, code: failure.code }, 'egress CONNECT refused or failed')
        reject(failure.status, failure.message)
      },
    )
  })

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const fail = (status: number, message: string): void => {
      if (res.headersSent) {
        res.destroy()
        return
      }
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' })
      res.end(`${message}\n`)
    }
    if (active >= maxConnections) return fail(503, 'egress proxy at its connection limit')
    let url: URL
    try {
      url = new URL(req.url ?? '')
    } catch {
      return fail(400, 'a proxy request needs an absolute http:// URI (use CONNECT for https)')
    }
    if (url.protocol !== 'http:')
      return fail(400, `only http:// URIs are proxied, got ${url.protocol} (use CONNECT for https)`)
    if (url.hostname === '') return fail(400, 'URI is missing a host')
    const port = url.port === '' ? 80 : Number(url.port)
    active++
    req.pause()
    openTunnel(url.hostname, port).then(
      ({ socket, rest }) => {
        if (rest.length > 0) socket.unshift(rest)
        const headers = endToEnd(req.headers)
        headers.host = url.host
        // The userinfo of the URI is credentials for the origin, never part of its address.
        if (url.username !== '' && headers.authorization === undefined) {
          headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
        }
        const path =
          req.method === 'OPTIONS' && url.pathname === '/' && url.search === ''
            ? '*'
            : `${url.pathname}${url.search}`
        const upstream = httpRequest({
          createConnection: () => socket,
          method: req.method,
          path,
          headers,
          setHost: false,
        })
        // readPrefix left the socket paused; resume once the client's parser listens to it.
        upstream.once('socket', (s) => s.resume())
        let finished = false
        const done = (): void => {
          if (finished) return
          finished = true
          active--
        }
        upstream.on('response', (upstreamRes) => {
          const out: OutgoingHttpHeaders = endToEnd(upstreamRes.headers)
          res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, out)
          upstreamRes.pipe(res)
          upstreamRes.on('error', () => res.destroy())
        })
        upstream.on('error', (cause) => {
          done()
          fail(502, new DialFailedError(url.host, { cause }).message)
        })
        res.on('close', () => {
          done()
          socket.destroy()
        })
        req.pipe(upstream)
        req.resume()
      },
      (error: unknown) => {
        active--
        const failure = asEgressError(error)
        log.info({ target: req.url, code: failure.code }, 'egress request refused or failed')
        req.resume()
        fail(failure.status, failure.message)
      },
    )
  })
  // Upgrades over plain http:// (WebSocket) are not relayed; CONNECT (wss://) is.
  server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {})
    const body = 'upgrade over an absolute-URI request is not supported; use CONNECT (e.g. wss://)\n'
    socket.end(
      `HTTP/1.1 501 Not Implemented\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    )
  })
  server.on('clientError', (_error, socket) => {
    socket.destroy()
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = (server.address() as AddressInfo).port
  log.info({ port: bound, hostAddress }, 'egress proxy listening')
  let closing: Promise<void> | undefined
  return {
    server,
    port: bound,
    env: proxyEnv(bound),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        for (const socket of tunnels) socket.destroy()
      })
      return closing
    },
  }
}

function statusText(status: number): string {
  return (
    {
      400: 'Bad Request',
      403: 'Forbidden',
      502: 'Bad Gateway',
      503: 'Service Unavailable',
      504: 'Gateway Timeout',
    }[status] ?? 'Error'
  )
}
