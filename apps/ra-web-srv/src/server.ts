/**
 * The attestation server: one request handler served over attested HTTPS (the certificate carries
 * a document binding its key) and, optionally, plain HTTP for local health checks.
 */

import { once } from 'node:events'
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import {
  type AttestationDocument,
  type AttestationPolicy,
  AWS_NITRO_ROOT_G1_PEM,
  createAttestationVerifier,
  createAttestedTlsCredentials,
  fromHex,
  type Nsm,
  parseAttestationDocument,
  taggedDigest,
  toHex,
} from '@enclave/attestation'
import type { Logger } from 'pino'
import { Counter, Gauge, Registry } from 'prom-client'
import { type FileHashes, type FileHashOptions, startFileHashes } from './file-hashes.js'
import { createStatementSigner, verifyStatement } from './statement.js'

export interface RaWebServerOptions {
  readonly nsm: Nsm
  /** Extra trusted root (the dev NSM's) besides the AWS root. */
  readonly devRootPem?: string
  readonly host: string
  /** 0 picks a free port. */
  readonly httpsPort: number
  /** Plain HTTP listener; undefined: none. */
  readonly httpPort?: number
  readonly dnsNames: readonly string[]
  /** How often the TLS credentials and the statement document are renewed, ms. */
  readonly refreshMs: number
  readonly files?: FileHashOptions
  /**
   * Let /attestation callers put their own public_key in the document. Off by default: it lets
   * anyone obtain a genuine document for any key (the server's own bindings stay safe, being tagged
   * in user_data, but verifiers that accept a bare public_key would not be).
   */
  readonly allowCallerPublicKey?: boolean
}

/**
 * /attestation never forwards the caller's user_data: the document carries
 * user_data = SHA-384(CLIENT_USER_DATA_TAG ‖ caller user_data (empty when absent)), so a caller can
 * never obtain a document with one of the server's own tagged bindings (TLS key, statement key).
 */
export const CLIENT_USER_DATA_TAG = 'enclave-framework/ra-web-srv/client/v1'

export interface RaWebServer {
  readonly httpsPort: number
  readonly httpPort: number | undefined
  close(): Promise<void>
}

const MAX_BODY = 64 * 1024

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

function hexParam(value: unknown, name: string): Uint8Array | undefined {
  if (value === undefined || value === null || value === '') return undefined
  const bytes = typeof value === 'string' ? fromHex(value) : undefined
  if (!bytes) throw new HttpError(400, `${name} must be hex`)
  if (bytes.length > 1024) throw new HttpError(400, `${name} is ${bytes.length} bytes; at most 1024`)
  return bytes
}

function base64Param(value: unknown, name: string): Uint8Array {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) {
    throw new HttpError(400, `${name} must be base64`)
  }
  return new Uint8Array(Buffer.from(value, 'base64'))
}

function pcrsParam(value: unknown): Record<number, string> | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null)
    throw new HttpError(400, 'pcrs must be an object {index: hex}')
  const out: Record<number, string> = {}
  for (const [k, v] of Object.entries(value)) {
    if (!/^\d{1,2}$/.test(k) || Number(k) > 31 || typeof v !== 'string' || fromHex(v)?.length !== 48) {
      throw new HttpError(400, `pcrs.${k} must be 96 hex digits for an index in 0..31`)
    }
    out[Number(k)] = v
  }
  return out
}

function timeParam(value: unknown): number | undefined {
  if (value === undefined) return undefined
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN
  if (Number.isNaN(ms)) throw new HttpError(400, 'at must be an ISO 8601 time')
  return ms
}

function documentJson(doc: AttestationDocument) {
  return {
    module_id: doc.moduleId,
    digest: doc.digest,
    timestamp: doc.timestamp,
    pcrs: Object.fromEntries([...doc.pcrs].map(([i, v]) => [i, toHex(v)])),
    certificate: Buffer.from(doc.certificate).toString('base64'),
    cabundle: doc.cabundle.map((c) => Buffer.from(c).toString('base64')),
    public_key: doc.publicKey && toHex(doc.publicKey),
    user_data: doc.userData && toHex(doc.userData),
    nonce: doc.nonce && toHex(doc.nonce),
  }
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object')
    return body as Record<string, unknown>
  } catch {
    throw new HttpError(400, 'the body must be a JSON object')
  }
}

export async function startRaWebServer(options: RaWebServerOptions, logger: Logger): Promise<RaWebServer> {
  const { nsm } = options
  const verifier = createAttestationVerifier({
    roots: options.devRootPem ? [AWS_NITRO_ROOT_G1_PEM, options.devRootPem] : [AWS_NITRO_ROOT_G1_PEM],
  })
  const registry = new Registry()
  const requests = new Counter({
    name: 'ra_web_srv_http_requests_total',
    help: 'HTTP requests',
    labelNames: ['route', 'status'],
    registers: [registry],
  })
  const documents = new Counter({
    name: 'ra_web_srv_attestation_documents_total',
    help: 'Attestation documents issued',
    registers: [registry],
  })
  const verifications = new Counter({
    name: 'ra_web_srv_verifications_total',
    help: 'Verify requests',
    labelNames: ['kind', 'result'],
    registers: [registry],
  })
  const trackedFiles = new Gauge({
    name: 'ra_web_srv_files_hashed',
    help: 'Files with a signed hash',
    registers: [registry],
  })

  const signer = createStatementSigner(nsm, options.refreshMs)
  await signer.document()
  let files: FileHashes | undefined
  if (options.files && options.files.roots.length > 0) {
    files = await startFileHashes(options.files, signer, logger.child({ component: 'files' }))
  }

  async function attestation(params: Record<string, unknown>, res: ServerResponse): Promise<void> {
    const publicKey = hexParam(params.public_key, 'public_key') ?? null
    if (publicKey && !options.allowCallerPublicKey) {
      throw new HttpError(
        403,
        'public_key is not accepted: this server does not bind caller keys (start it with --allow-caller-public-key)',
      )
    }
    const userData = hexParam(params.user_data, 'user_data') ?? new Uint8Array(0)
    const doc = await nsm.getAttestationDocument({
      nonce: hexParam(params.nonce, 'nonce') ?? null,
      userData: taggedDigest(CLIENT_USER_DATA_TAG, userData),
      publicKey,
    })
    documents.inc()
    const format = params.format ?? 'cbor'
    if (format === 'cbor') {
      res.writeHead(200, { 'content-type': 'application/cbor' }).end(doc)
    } else if (format === 'base64') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(Buffer.from(doc).toString('base64'))
    } else if (format === 'json') {
      send(res, 200, {
        document: Buffer.from(doc).toString('base64'),
        decoded: documentJson(parseAttestationDocument(doc).document),
      })
    } else {
      throw new HttpError(400, 'format must be cbor, base64 or json')
    }
  }

  function send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`)
  }

  function fileParam(url: URL) {
    if (!files) throw new HttpError(404, 'no folders are watched (--watch)')
    const path = url.searchParams.get('path')
    if (!path) throw new HttpError(400, 'path is required')
    const record = files.get(path)
    if (!record) throw new HttpError(404, `no hash for ${path}`)
    return record
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<string> {
    const key = `${req.method} ${url.pathname}`
    switch (key) {
      case 'GET /healthz':
        send(res, 200, { status: 'ok' })
        return '/healthz'
      case 'GET /metrics':
        trackedFiles.set(files?.list().length ?? 0)
        res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics())
        return '/metrics'
      case 'GET /pcrs': {
        const { lockedPcrs } = await nsm.describeNsm()
        const pcrs: Record<number, string> = {}
        for (const i of lockedPcrs) pcrs[i] = toHex((await nsm.describePcr(i)).value)
        send(res, 200, { pcrs })
        return '/pcrs'
      }
      case 'GET /attestation':
        await attestation(Object.fromEntries(url.searchParams), res)
        return '/attestation'
      case 'POST /attestation':
        await attestation(await readJson(req), res)
        return '/attestation'
      case 'GET /files':
        if (!files) throw new HttpError(404, 'no folders are watched (--watch)')
        send(res, 200, {
          files: files.list().map(({ path, hash, size, hashedAt }) => ({ path, hash, size, hashedAt })),
        })
        return '/files'
      case 'GET /files/hash': {
        const r = fileParam(url)
        send(res, 200, { path: r.path, hash: r.hash, algorithm: 'SHA3-512', size: r.size })
        return '/files/hash'
      }
      case 'GET /files/statement': {
        const r = fileParam(url)
        send(res, 200, {
          path: r.path,
          hash: r.hash,
          statement: Buffer.from(r.statement).toString('base64'),
          document: Buffer.from(r.document).toString('base64'),
        })
        return '/files/statement'
      }
      case 'POST /verify/document': {
        const body = await readJson(req)
        const policy: AttestationPolicy = {
          pcrs: pcrsParam(body.pcrs),
          nonce: hexParam(body.nonce, 'nonce'),
          userData: hexParam(body.user_data, 'user_data'),
          publicKey: hexParam(body.public_key, 'public_key'),
          allowDebug: body.allow_debug === true,
          at: timeParam(body.at),
        }
        const result = verifier.verify(base64Param(body.document, 'document'), policy)
        verifications.inc({ kind: 'document', result: result.ok ? 'valid' : 'invalid' })
        send(res, 200, {
          valid: result.ok,
          failures: result.failures,
          document: result.document ? documentJson(result.document) : null,
        })
        return '/verify/document'
      }
      case 'POST /verify/statement': {
        const body = await readJson(req)
        const check = verifyStatement(
          base64Param(body.statement, 'statement'),
          base64Param(body.document, 'document'),
          verifier,
          {
            pcrs: pcrsParam(body.pcrs),
            allowDebug: body.allow_debug === true,
            at: timeParam(body.at),
          },
        )
        verifications.inc({ kind: 'statement', result: check.ok ? 'valid' : 'invalid' })
        send(
          res,
          200,
          check.ok
            ? { valid: true, statement: check.body, module_id: check.moduleId }
            : { valid: false, failures: check.failures },
        )
        return '/verify/statement'
      }
      default: {
        const known = [
          '/healthz',
          '/metrics',
          '/pcrs',
          '/attestation',
          '/files',
          '/files/hash',
          '/files/statement',
          '/verify/document',
          '/verify/statement',
        ]
        if (known.includes(url.pathname))
          throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}`)
        throw new HttpError(404, `no route ${url.pathname}`)
      }
    }
  }

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    route(req, res, url).then(
      (name) => requests.inc({ route: name, status: String(res.statusCode) }),
      (err: unknown) => {
        const status =
          err instanceof HttpError
            ? err.status
            : (err as { code?: string }).code?.startsWith('ENCLAVE_ATTESTATION_NSM')
              ? 502
              : 500
        if (status >= 500) logger.error({ err, path: url.pathname }, 'request failed')
        requests.inc({ route: 'error', status: String(status) })
        if (!res.headersSent) send(res, status, { error: (err as Error).message })
        else res.destroy()
      },
    )
  }

  const credentials = () =>
    createAttestedTlsCredentials({ nsm, dnsNames: options.dnsNames, ipAddresses: ['127.0.0.1'] })
  const https = createHttpsServer({ ...(await credentials()), requestTimeout: 30_000 }, handler)
  https.listen(options.httpsPort, options.host)
  await once(https, 'listening')
  // documents live ~3 hours on Nitro: renew the certificate's well before
  const refresh = setInterval(() => {
    credentials().then(
      (c) => https.setSecureContext({ key: c.key, cert: c.cert }),
      (err: unknown) => logger.error({ err }, 'cannot renew the attested TLS credentials'),
    )
  }, options.refreshMs)
  refresh.unref()

  let http: Server | undefined
  if (options.httpPort !== undefined) {
    http = createHttpServer({ requestTimeout: 30_000 }, handler)
    http.listen(options.httpPort, options.host)
    await once(http, 'listening')
  }

  return {
    httpsPort: (https.address() as AddressInfo).port,
    httpPort: http ? (http.address() as AddressInfo).port : undefined,
    async close() {
      clearInterval(refresh)
      files?.close()
      const closing = [https, http]
        .filter((s): s is Server => s !== undefined)
        .map((s) => {
          s.closeAllConnections()
          return new Promise<void>((done) => s.close(() => done()))
        })
      await Promise.all(closing)
      await nsm.close()
    },
  }
}
