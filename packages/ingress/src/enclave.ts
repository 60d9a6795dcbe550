import { readFileSync } from 'node:fs'
import { createServer as createNetServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import { forward, readPrefix, silentLogger, type TunnelStats } from '@enclave/tunnel'
import { listen } from '@enclave/vsock-transport'
import { InvalidOptionsError, TlsFilesError } from './errors.js'
import { type Context, DEFAULTS, type IngressEnclaveOptions, integer } from './options.js'
import { type Endpoint, encodeProxyV2, ProxyV2Decoder, sslTlv } from './proxy-v2.js'

/** A running enclave half of one ingress port. */
export interface IngressEnclave {
  /** The vsock listener. */
  readonly server: Server
  stats(): TunnelStats & { handshakeFailures: number }
  close(): Promise<void>
}

function readPem(what: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (cause) {
    throw new TlsFilesError(what, path, { cause })
  }
}

/**
 * The enclave half of one ingress port: vsock listenPort → 127.0.0.1:listenPort, relayed by
 * @enclave/tunnel. Optionally reads the host's PROXY v2 header, terminates TLS with the manifest's
 * cert_file/key_file (mTLS when clientCaFile is set: clients without a certificate the CA signed
 * are refused during the handshake) and sends the app a PROXY v2 header with the client address
 * and, under TLS, a PP2_TYPE_SSL TLV (TLS version, client certificate CN, verified).
 */
export async function startIngressEnclave(
  options: IngressEnclaveOptions,
  { logger = silentLogger }: Context = {},
): Promise<IngressEnclave> {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionsError('startIngressEnclave() needs { listenPort }')
  const listenPort = integer('listenPort', options.listenPort, 1, 65535)
  const appPort = integer('appPort', options.appPort ?? listenPort, 1, 65535)
  const handshakeTimeoutMs = integer(
    'handshakeTimeoutMs',
    options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
    1,
    600_000,
  )
  const idleTimeoutMs = integer(
    'idleTimeoutMs',
    options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    0,
    2_147_483_647,
  )
  const maxConnections = integer(
    'maxConnections',
    options.maxConnections ?? DEFAULTS.maxConnections,
    1,
    1_000_000,
  )
  const proxyProtocol = options.proxyProtocol === true
  const log = logger.child({ component: 'ingress-enclave', port: listenPort })

  const tls = options.tls
  let ca: Buffer | undefined
  let initial: { cert: Buffer | string; key: Buffer | string } | undefined
  if (tls) {
    ca = tls.clientCaFile ? readPem('client CA', tls.clientCaFile) : undefined
    if (tls.credentials) {
      if (typeof tls.credentials !== 'function')
        throw new InvalidOptionsError('option tls.credentials must be a function')
      initial = await tls.credentials()
    } else if (typeof tls.certFile === 'string' && typeof tls.keyFile === 'string') {
      initial = { cert: readPem('certificate', tls.certFile), key: readPem('key', tls.keyFile) }
    } else {
      throw new InvalidOptionsError('option tls needs certFile and keyFile, or credentials')
    }
  }
  const refreshMs = integer('tls.refreshMs', tls?.refreshMs ?? DEFAULTS.refreshMs, 1000, 2_147_483_647)
  const tlsServer =
    tls && initial
      ? (() => {
          try {
            return createTlsServer({
              ...initial,
              handshakeTimeout: handshakeTimeoutMs,
              minVersion: 'TLSv1.2',
              ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}),
            })
          } catch (cause) {
            throw new TlsFilesError(
              'certificate/key pair',
              tls.certFile ? `${tls.certFile} + ${tls.keyFile}` : 'from tls.credentials',
              { cause },
            )
          }
        })()
      : undefined
  // Attested certificates carry a document that ages: make a fresh one now and then.
  const refresher =
    tls?.credentials && tlsServer
      ? setInterval(() => {
          tls.credentials!().then(
            (fresh) => tlsServer.setSecureContext({ ...fresh, ...(ca ? { ca } : {}) }),
            (err: unknown) =>
              log.warn({ err }, 'refreshing the ingress TLS credentials failed; keeping the current ones'),
          )
        }, refreshMs).unref()
      : undefined

  // Client addresses learnt from the host's header, for the header towards the app.
  const clients = new WeakMap<Socket, { source?: Endpoint; destination?: Endpoint }>()
  const relay = createNetServer()
  let handshakeFailures = 0
  // Every accepted vsock socket until it closes: bounds connections in a handshake as well as relayed ones.
  const live = new Set<Socket>()

  const tunnel = await forward(
    {
      from: relay,
      to: (inbound) => {
        const address = `tcp://127.0.0.1:${appPort}`
        if (!proxyProtocol) return { address }
        const tlsSocket = tlsServer ? (inbound as TLSSocket) : undefined
        // tls.Server keeps the wrapped socket as _parent (Node 20+); the PROXY + mTLS test guards it.
        const underlying = tlsSocket
          ? ((tlsSocket as unknown as { _parent?: Socket })._parent ?? inbound)
          : inbound
        const client = clients.get(underlying) ?? clients.get(inbound) ?? {}
        const tlvs = tlsSocket
          ? [
              sslTlv({
                version: tlsSocket.getProtocol() ?? undefined,
                commonName: tls?.clientCaFile ? peerCommonName(tlsSocket) : undefined,
                verified: tlsSocket.authorized === true,
              }),
            ]
          : []
        return { address, preamble: encodeProxyV2({ ...client, tlvs }) }
      },
      idleTimeoutMs,
      maxConnections,
      connectTimeoutMs: 5_000,
    },
    { logger: log },
  )

  tlsServer?.on('secureConnection', (socket: TLSSocket) => relay.emit('connection', socket))
  tlsServer?.on('tlsClientError', (error, socket) => {
    handshakeFailures++
    log.info({ err: error }, 'ingress TLS handshake refused')
    socket.destroy()
  })

  const accept = async (socket: Socket): Promise<void> => {
    let stream = socket
    if (proxyProtocol) {
      const decoder = new ProxyV2Decoder()
      const { value, rest } = await readPrefix(socket, (chunk) => decoder.push(chunk), {
        signal: AbortSignal.timeout(handshakeTimeoutMs),
        maxBytes: 70_000,
      })
      clients.set(socket, {
        ...(value.source ? { source: value.source } : {}),
        ...(value.destination ? { destination: value.destination } : {}),
      })
      if (rest.length > 0) socket.unshift(rest)
      stream = socket
    }
    if (tlsServer) tlsServer.emit('connection', stream)
    else relay.emit('connection', stream)
  }

  const address = options.address ?? `vsock://any:${listenPort}`
  const server = await listen(address, options.dev === undefined ? {} : { dev: options.dev }, (socket) => {
    socket.on('error', () => {})
    if (live.size >= maxConnections) {
      socket.destroy()
      return
    }
    live.add(socket)
    socket.once('close', () => live.delete(socket))
    accept(socket).catch((error: unknown) => {
      handshakeFailures++
      log.info({ err: error }, 'ingress connection refused before relaying')
      socket.destroy()
    })
  })
  log.info(
    { address, appPort, tls: tls !== undefined, mtls: tls?.clientCaFile !== undefined, proxyProtocol },
    'ingress listening',
  )

  let closing: Promise<void> | undefined
  return {
    server,
    stats: () => ({ ...tunnel.stats(), handshakeFailures }),
    close() {
      closing ??= (async () => {
        clearInterval(refresher)
        await new Promise<void>((resolve) => server.close(() => resolve()))
        await tunnel.close()
        // Connections still in a TLS handshake or header read are not the tunnel's yet.
        for (const socket of live) socket.destroy()
      })()
      return closing
    },
  }
}

function peerCommonName(socket: TLSSocket): string | undefined {
  const cn = socket.getPeerCertificate()?.subject?.CN
  return Array.isArray(cn) ? cn[0] : cn
}
