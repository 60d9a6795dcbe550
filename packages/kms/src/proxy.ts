/**
 * The enclaver-style KMS proxy on 127.0.0.1: apps on any AWS SDK point their KMS endpoint here
 * (with any credentials; their signature is not checked, only its region/service scope is read).
 * Attesting actions get the enclave's Recipient; every request is re-signed with SigV4 using the
 * proxy's credentials and sent to the real endpoint; CiphertextForRecipient in a 200 answer is
 * decrypted into the plain field, so the app sees an ordinary KMS response.
 */

import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type RequestOptions,
  type ServerResponse,
} from 'node:http'
import { Agent, request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { Duplex } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { Sha256 } from '@aws-crypto/sha256-js'
import { type Logger, silentLogger } from '@enclave/logger'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import { plainFieldOf } from './actions.js'
import type { CredentialsProvider } from './credentials.js'
import {
  BadRequestError,
  CredentialsFailedError,
  InvalidOptionError,
  KmsError,
  MissingCiphertextError,
  UpstreamFailedError,
} from './errors.js'
import type { Recipient } from './recipient.js'

export interface KmsProxyOptions {
  /** TCP port on 127.0.0.1 (the manifest's kms_proxy.listen_port); 0 picks a free one. */
  port: number
  /** Listen address. Loopback only by default: the proxy signs with the enclave's credentials. @default 127.0.0.1 */
  host?: string
  /** Region → endpoint: a host[:port] or an https:// URL. @default kms.<region>.amazonaws.com */
  endpoints?: Readonly<Record<string, string>>
  /** Extra CA certificates (PEM) trusted for the endpoint, replacing Node's defaults when given. */
  ca?: string | readonly string[]
  /** Opens the TCP path to the endpoint (e.g. a CONNECT tunnel through the egress proxy). @default direct TCP */
  connect?: (host: string, port: number) => Promise<Duplex>
  /** Largest request or response body, bytes. @default 1048576 */
  maxBodyBytes?: number
  /** Upstream timeout per request, ms. @default 30000 */
  timeoutMs?: number
  /** Concurrent app connections. @default 64 */
  maxConnections?: number
}

export interface KmsProxyDeps {
  recipient: Recipient
  credentials: CredentialsProvider
  logger?: Logger
}

export interface KmsProxy {
  readonly port: number
  /** http://127.0.0.1:<port>, the value odyn puts in AWS_KMS_ENDPOINT. */
  readonly url: string
  close(): Promise<void>
}

const REGION = /^[a-z0-9]+(-[a-z0-9]+){1,5}$/
const SCOPE = /Credential=[^/,\s]+\/\d{8}\/([^/,\s]+)\/([^/,\s]+)\/aws4_request/
const PASSED_HEADERS = ['content-type', 'x-amzn-requestid', 'x-amzn-errortype', 'x-amzn-query-error']
// RFC 9110 §7.6.1: these describe one connection, never the message; the proxy frames its own answer.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/**
 * The upstream headers safe to copy into the proxy's answer: only end-to-end names from `allowed`,
 * minus hop-by-hop ones and any the upstream's Connection header names. Copying Transfer-Encoding
 * next to the proxy's own Content-Length would make a malformed, smuggling-shaped response.
 */
function endToEndHeaders(headers: IncomingHttpHeaders, allowed: readonly string[]): Record<string, string> {
  const dropped = new Set(HOP_BY_HOP)
  const connection = headers.connection
  for (const token of (Array.isArray(connection) ? connection.join(',') : (connection ?? '')).split(',')) {
    const name = token.trim().toLowerCase()
    if (name) dropped.add(name)
  }
  const out: Record<string, string> = {}
  for (const name of allowed) {
    const lower = name.toLowerCase()
    const value = headers[lower]
    if (!dropped.has(lower) && typeof value === 'string') out[lower] = value
  }
  return out
}

interface Endpoint {
  readonly hostname: string
  readonly port: number
  readonly hostHeader: string
}

function resolveEndpoint(value: string, region: string): Endpoint {
  let url: URL
  try {
    url = new URL(value.includes('://') ? value : `https://${value}`)
  } catch (err) {
    throw new InvalidOptionError(`endpoints.${region}: ${value} is not a host or https URL`, { cause: err })
  }
  if (url.protocol !== 'https:' || (url.pathname !== '/' && url.pathname !== '')) {
    throw new InvalidOptionError(`endpoints.${region}: ${value} must be an https:// origin or a host[:port]`)
  }
  const hostname = url.hostname.replace(/^\[|\]$/g, '')
  return { hostname, port: Number(url.port || 443), hostHeader: url.host }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback
  if (!Number.isInteger(v) || v <= 0)
    throw new InvalidOptionError(`${name} must be a positive integer, got ${String(value)}`)
  return v
}

function readBody(stream: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = []
    let size = 0
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        // Keep draining (bounded by the request timeout) so the peer can read the refusal.
        chunks = []
        reject(new BadRequestError(`${what} exceeds ${limit} bytes (maxBodyBytes)`))
      } else chunks.push(chunk)
    })
    stream.on('end', () => resolve(Buffer.concat(chunks)))
    stream.on('error', reject)
    stream.on('aborted', () => reject(new UpstreamFailedError(`${what} was cut short`)))
  })
}

function sendError(res: ServerResponse, status: number, err: KmsError): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = JSON.stringify({ __type: err.code, code: err.code, message: err.message })
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    connection: 'close',
    'x-amzn-errortype': err.code,
    'content-length': Buffer.byteLength(body),
  })
  res.end(body)
}

function statusOf(err: KmsError): number {
  switch (err.code) {
    case 'ENCLAVE_KMS_BAD_REQUEST':
      return 400
    // The endpoint's answer was unusable: unreachable, not JSON, or an envelope we cannot open.
    case 'ENCLAVE_KMS_UPSTREAM_FAILED':
    case 'ENCLAVE_KMS_MISSING_CIPHERTEXT':
    case 'ENCLAVE_KMS_MALFORMED_CMS':
    case 'ENCLAVE_KMS_UNSUPPORTED_CMS':
    case 'ENCLAVE_KMS_DECRYPT_FAILED':
      return 502
    default:
      return 500
  }
}

/** Starts the proxy and resolves once it listens. */
export async function startKmsProxy(options: KmsProxyOptions, deps: KmsProxyDeps): Promise<KmsProxy> {
  if (!Number.isInteger(options?.port) || options.port < 0 || options.port > 65535) {
    throw new InvalidOptionError(`port must be an integer in 0..65535, got ${String(options?.port)}`)
  }
  if (!deps?.recipient || typeof deps.credentials !== 'function') {
    throw new InvalidOptionError(
      'deps.recipient (createRecipient) and deps.credentials (a provider) are required',
    )
  }
  const host = options.host ?? '127.0.0.1'
  const maxBodyBytes = positive('maxBodyBytes', options.maxBodyBytes, 1024 * 1024)
  const timeoutMs = positive('timeoutMs', options.timeoutMs, 30_000)
  const maxConnections = positive('maxConnections', options.maxConnections, 64)
  const endpoints = new Map<string, Endpoint>()
  for (const [region, value] of Object.entries(options.endpoints ?? {})) {
    if (!REGION.test(region)) throw new InvalidOptionError(`endpoints: ${region} is not a region name`)
    endpoints.set(region, resolveEndpoint(value, region))
  }
  const ca = options.ca === undefined ? undefined : [options.ca].flat()
  const connect = options.connect
  const log = (deps.logger ?? silentLogger).child({ component: 'kms-proxy' })
  const { recipient, credentials } = deps
  const agent = new Agent({ keepAlive: true, maxSockets: maxConnections, ...(ca ? { ca } : {}) })
  const signers = new Map<string, SignatureV4>()

  function signerFor(region: string): SignatureV4 {
    let signer = signers.get(region)
    if (!signer) {
      signer = new SignatureV4({
        service: 'kms',
        region,
        sha256: Sha256,
        credentials: async () => {
          try {
            return await credentials()
          } catch (err) {
            if (err instanceof KmsError) throw err
            throw new CredentialsFailedError(`the credentials provider failed: ${(err as Error).message}`, {
              cause: err,
            })
          }
        },
      })
      signers.set(region, signer)
    }
    return signer
  }

  function forward(
    endpoint: Endpoint,
    headers: Record<string, string>,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const onResponse = (res: IncomingMessage) => {
        readBody(res, maxBodyBytes, 'the KMS response').then(
          (data) => {
            resolve({
              status: res.statusCode ?? 502,
              headers: endToEndHeaders(res.headers, PASSED_HEADERS),
              body: data,
            })
          },
          (err) =>
            reject(err instanceof KmsError ? new UpstreamFailedError(err.message, { cause: err }) : err),
        )
      }
      const common = { method: 'POST', path: '/', headers, timeout: timeoutMs }
      const servername = isIP(endpoint.hostname) ? undefined : endpoint.hostname
      const req = connect
        ? httpRequest(
            {
              ...common,
              host: endpoint.hostname,
              port: endpoint.port,
              // No agent: with one, Node ignores createConnection (agent: false makes a fresh Agent).
              createConnection: (_opts: unknown, done: (err: Error | null, socket?: Duplex) => void) => {
                connect(endpoint.hostname, endpoint.port).then(
                  (socket) => {
                    const tls = tlsConnect({
                      socket,
                      host: endpoint.hostname,
                      ...(servername ? { servername } : {}),
                      ...(ca ? { ca } : {}),
                    })
                    done(null, tls)
                  },
                  (err: Error) => done(err),
                )
                return undefined
              },
            } as unknown as RequestOptions,
            onResponse,
          )
        : httpsRequest(
            {
              ...common,
              host: endpoint.hostname,
              port: endpoint.port,
              agent,
              ...(servername ? { servername } : {}),
            },
            onResponse,
          )
      req.on('timeout', () =>
        req.destroy(new UpstreamFailedError(`the KMS endpoint did not answer within ${timeoutMs} ms`)),
      )
      req.on('error', (err) =>
        reject(
          err instanceof KmsError
            ? err
            : new UpstreamFailedError(`cannot reach ${endpoint.hostHeader}: ${err.message}`, { cause: err }),
        ),
      )
      req.end(body)
    })
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST')
      throw new BadRequestError(`${req.method} is not a KMS request; KMS uses POST /`)
    const target = req.headers['x-amz-target']
    if (typeof target !== 'string' || !/^TrentService\.[A-Za-z]+$/i.test(target)) {
      throw new BadRequestError('X-Amz-Target must be TrentService.<Action>')
    }
    const auth = typeof req.headers.authorization === 'string' ? req.headers.authorization : ''
    const query = new URL(req.url ?? '/', 'http://x').searchParams.get('X-Amz-Credential') ?? ''
    const scope = SCOPE.exec(auth) ?? SCOPE.exec(`Credential=${query}`)
    if (!scope)
      throw new BadRequestError(
        'the request is not SigV4-signed: no credential scope to take the region from',
      )
    const [, region, service] = scope as unknown as [string, string, string]
    if (service !== 'kms')
      throw new BadRequestError(`the credential scope names service ${service}; this proxy serves kms`)
    if (!REGION.test(region))
      throw new BadRequestError(`the credential scope region ${region} is not a region name`)
    let body = await readBody(req, maxBodyBytes, 'the request body')
    const action = target.slice(target.indexOf('.') + 1)
    const field = plainFieldOf(action)
    if (field !== undefined) {
      let json: unknown
      try {
        json = JSON.parse(body.length === 0 ? '{}' : body.toString('utf8'))
      } catch (err) {
        throw new BadRequestError(`${action}: the body is not JSON`, { cause: err })
      }
      if (typeof json !== 'object' || json === null || Array.isArray(json)) {
        throw new BadRequestError(`${action}: the body must be a JSON object`)
      }
      const recipientField = await recipient.field()
      body = Buffer.from(
        JSON.stringify({
          ...json,
          Recipient: {
            AttestationDocument: Buffer.from(recipientField.AttestationDocument).toString('base64'),
            KeyEncryptionAlgorithm: recipientField.KeyEncryptionAlgorithm,
          },
        }),
      )
    }
    const endpoint = endpoints.get(region) ?? resolveEndpoint(`kms.${region}.amazonaws.com`, region)
    const signed = await signerFor(region).sign(
      new HttpRequest({
        method: 'POST',
        protocol: 'https:',
        hostname: endpoint.hostname,
        port: endpoint.port,
        path: '/',
        headers: {
          host: endpoint.hostHeader,
          'content-type': 'application/x-amz-json-1.1',
          'x-amz-target': target,
          'content-length': String(body.length),
        },
        body,
      }),
    )
    const upstream = await forward(endpoint, signed.headers as Record<string, string>, body)
    log.debug({ action, region, status: upstream.status }, 'kms request')
    let out = upstream.body
    if (upstream.status === 200 && field !== undefined) {
      let json: Record<string, unknown>
      try {
        json = JSON.parse(upstream.body.toString('utf8')) as Record<string, unknown>
      } catch (err) {
        throw new UpstreamFailedError(`${action}: the KMS answer is not JSON`, { cause: err })
      }
      const sealed = json.CiphertextForRecipient
      if (typeof sealed !== 'string') {
        throw new MissingCiphertextError(`${action}: the KMS answer carries no CiphertextForRecipient`)
      }
      const { CiphertextForRecipient: _sealed, ...rest } = json
      const plain = recipient.open(new Uint8Array(Buffer.from(sealed, 'base64')))
      out = Buffer.from(JSON.stringify({ ...rest, [field]: Buffer.from(plain).toString('base64') }))
      Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength).fill(0)
    }
    res.writeHead(upstream.status, { ...upstream.headers, 'content-length': out.length })
    res.end(out)
  }

  const server = createServer({ requestTimeout: timeoutMs * 2, headersTimeout: 30_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      const error =
        err instanceof KmsError
          ? err
          : new UpstreamFailedError(`unexpected failure: ${(err as Error).message}`, { cause: err })
      log.warn({ err: error, code: error.code }, 'kms request refused')
      sendError(res, statusOf(error), error)
    })
  })
  server.maxConnections = maxConnections
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : options.port
  log.info({ port }, 'kms proxy listening')
  let closing: Promise<void> | undefined
  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        agent.destroy()
      })
      return closing
    },
  }
}
