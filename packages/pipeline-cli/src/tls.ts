import { createCipheriv, randomBytes, type X509Certificate } from 'node:crypto'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import { HandshakeFailedError } from './errors.js'
import { fingerprintOfCertificate, type Identity } from './identity.js'

export const TLS13_SUITES = [
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
] as const

/**
 * Bytes each TLS stream buffers per direction before it pushes back. Node's default (16 KiB, one
 * TLS record) makes the reader stop and restart the socket for every record and the writer wait
 * for a drain after every write, so both ends spend the transfer waiting on each other.
 */
const STREAM_HIGH_WATER_MARK = 1024 * 1024

let measured: string | undefined

/**
 * The TLS 1.3 suites in order of speed on this machine. AES-GCM is fastest with AES instructions
 * but several times slower than ChaCha20-Poly1305 without them (nested VMs often hide them from
 * OpenSSL even when /proc/cpuinfo lists `aes`), so the order comes from timing 1 MiB of each
 * once per process (a few milliseconds), not from a CPU flag.
 */
export function preferredCipherSuites(): string {
  if (measured) return measured
  const data = Buffer.alloc(1 << 20)
  const time = (algorithm: 'aes-128-gcm' | 'chacha20-poly1305', keyLength: number) => {
    let best = Number.POSITIVE_INFINITY
    for (let round = 0; round < 2; round++) {
      const start = process.hrtime.bigint()
      const cipher = createCipheriv(algorithm as 'aes-128-gcm', randomBytes(keyLength), randomBytes(12), {
        authTagLength: 16,
      })
      cipher.update(data)
      cipher.final()
      best = Math.min(best, Number(process.hrtime.bigint() - start))
    }
    return best
  }
  const aes = time('aes-128-gcm', 16)
  const chacha = time('chacha20-poly1305', 32)
  measured =
    aes < chacha
      ? 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384'
      : 'TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384'
  return measured
}

/** Resolves the `ciphers` option: 'auto' measures; otherwise a ':'-separated TLS 1.3 suite list. */
export function resolveCipherSuites(ciphers: string): string {
  return ciphers === 'auto' ? preferredCipherSuites() : ciphers
}

export interface SecureOptions {
  identity: Identity
  ciphers: string
  handshakeTimeoutMs: number
}

function peerCertificate(socket: tls.TLSSocket): X509Certificate | undefined {
  return socket.getPeerX509Certificate()
}

/** The fingerprint of the key the peer proved it holds during the handshake. */
export function peerFingerprint(socket: tls.TLSSocket): string | undefined {
  const cert = peerCertificate(socket)
  return cert ? fingerprintOfCertificate(cert) : undefined
}

function handshake(
  socket: tls.TLSSocket,
  event: 'secureConnect' | 'secure',
  timeoutMs: number,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      finish(new HandshakeFailedError(`the TLS handshake did not finish within ${timeoutMs} ms`))
      socket.destroy()
    }, timeoutMs)
    const finish = (error?: Error) => {
      clearTimeout(timer)
      socket.off(event, onSecure)
      socket.off('error', onError)
      socket.off('close', onClose)
      if (error) reject(error)
      else resolve(socket)
    }
    const onSecure = () => finish()
    const onError = (error: Error) =>
      finish(new HandshakeFailedError(`the TLS handshake failed: ${error.message}`, { cause: error }))
    const onClose = () =>
      finish(new HandshakeFailedError('the peer closed the connection during the TLS handshake'))
    socket.once(event, onSecure)
    socket.once('error', onError)
    socket.once('close', onClose)
  })
}

/**
 * Client side: TLS 1.3 over an already connected transport socket, presenting our certificate.
 * OpenSSL's chain check is off on purpose (the certificates are self-signed); the caller decides
 * trust from the server's key fingerprint or attestation right after this resolves.
 */
export function secureClient(socket: Duplex, options: SecureOptions): Promise<tls.TLSSocket> {
  const connectOptions: tls.ConnectionOptions & { highWaterMark: number } = {
    socket,
    key: options.identity.key,
    cert: options.identity.cert,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    // With 'auto' the client offers every suite unmeasured: the server's order decides
    // (honorCipherOrder), so timing the ciphers here would only delay the handshake.
    ciphers: options.ciphers === 'auto' ? TLS13_SUITES.join(':') : options.ciphers,
    rejectUnauthorized: false,
    servername: undefined,
    highWaterMark: STREAM_HIGH_WATER_MARK,
  }
  const secure = tls.connect(connectOptions)
  return handshake(secure, 'secureConnect', options.handshakeTimeoutMs)
}

/** Server side: TLS 1.3 on an accepted transport socket, requiring a client certificate. */
export function secureServer(
  socket: Duplex,
  options: SecureOptions & { context: tls.SecureContext },
): Promise<tls.TLSSocket> {
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: options.context,
    requestCert: true,
    rejectUnauthorized: false,
    highWaterMark: STREAM_HIGH_WATER_MARK,
  } as tls.TLSSocketOptions)
  return handshake(secure, 'secure', options.handshakeTimeoutMs)
}

/** One secure context per server, shared by its connections. */
export function serverContext(identity: Identity, ciphers: string): tls.SecureContext {
  return tls.createSecureContext({
    key: identity.key,
    cert: identity.cert,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: resolveCipherSuites(ciphers),
    honorCipherOrder: true,
  })
}
