/**
 * The in-enclave API on 127.0.0.1:<api.listen_port>: attestation documents from the NSM, the
 * Sparsity fork's ECDH/AES-GCM encryption endpoints with replay protection, and NSM randomness.
 */

import { createECDH, createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { type Logger, silentLogger } from '@enclave/logger'
import {
  decryptMessage,
  encryptMessage,
  importP384PublicKey,
  NONCE_LENGTH,
  ReplayCache,
} from './encryption.js'
import {
  BadRequestError,
  BodyTooLargeError,
  EnclaveApiError,
  InvalidOptionError,
  MethodNotAllowedError,
  NotFoundError,
  NsmFailedError,
  ReplayedNonceError,
} from './errors.js'
import { type EnclaveApiOptions, resolveOptions } from './options.js'

/** What the API needs from an NSM (@enclave/attestation's device client or dev NSM). */
export interface ApiNsm {
  getAttestationDocument(request: {
    userData?: Uint8Array | null
    nonce?: Uint8Array | null
    publicKey?: Uint8Array | null
  }): Promise<Uint8Array>
  getRandom(): Promise<Uint8Array>
}

export interface EnclaveApiDeps {
  nsm: ApiNsm
  logger?: Logger
}

export interface EnclaveApiServer {
  /** Binds the port; resolves with the bound port. */
  listen(): Promise<number>
  /** The bound port (after listen). */
  readonly port: number
  /** The P-384 public key of /v1/encryption/* (SPKI DER); available after listen. */
  readonly encryptionPublicKey: Uint8Array
  close(): Promise<void>
}

/** The NSM's limit for each of nonce, user_data and public_key. */
const NSM_FIELD_MAX = 1024
const RANDOM_DEFAULT = 32
const RANDOM_MAX = 256
/** NSM bytes hashed into the P-384 private key (one SHA-384 block's worth of entropy). */
const SEED_BYTES = 48

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex')

function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = []
    let size = 0
    let failed = false
    req.on('data', (chunk: Buffer) => {
      if (failed) return
      size += chunk.length
      if (size > limit) {
        failed = true
        chunks = []
        reject(new BodyTooLargeError(`the body exceeds ${limit} bytes (maxBodyBytes)`))
      } else chunks.push(chunk)
    })
    req.on('end', () => {
      if (failed) return
      const text = Buffer.concat(chunks).toString('utf8')
      if (text.trim() === '') return resolve({})
      try {
        const value: unknown = JSON.parse(text)
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          reject(new BadRequestError('the body must be a JSON object'))
        } else resolve(value as Record<string, unknown>)
      } catch (err) {
        reject(new BadRequestError(`the body is not JSON: ${(err as Error).message}`, { cause: err }))
      }
    })
    req.on('error', reject)
  })
}

function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const value = body[field]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string') throw new BadRequestError(`${field} must be a string`)
  return value
}

function requiredString(body: Record<string, unknown>, field: string): string {
  const value = optionalString(body, field)
  if (value === undefined) throw new BadRequestError(`${field} is required`)
  return value
}

function base64Field(body: Record<string, unknown>, field: string): Buffer | undefined {
  const value = optionalString(body, field)
  if (value === undefined) return undefined
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) throw new BadRequestError(`${field} must be base64`)
  return Buffer.from(value, value.includes('-') || value.includes('_') ? 'base64url' : 'base64')
}

function hexField(body: Record<string, unknown>, field: string): Buffer {
  const value = requiredString(body, field).replace(/^0x/i, '')
  if (value.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(value)) {
    throw new BadRequestError(`${field} must be hex (0x optional)`)
  }
  return Buffer.from(value, 'hex')
}

function bounded(field: string, value: Buffer | undefined): Buffer | undefined {
  if (value && value.length > NSM_FIELD_MAX) {
    throw new BadRequestError(`${field} is ${value.length} bytes; the NSM accepts at most ${NSM_FIELD_MAX}`)
  }
  return value
}

function publicKeyField(body: Record<string, unknown>): Buffer | undefined {
  const value = optionalString(body, 'public_key')
  if (value === undefined) return undefined
  try {
    // A PEM key goes in as its whole SubjectPublicKeyInfo DER (enclaver main's behaviour).
    return createPublicKey(value).export({ format: 'der', type: 'spki' })
  } catch (err) {
    throw new BadRequestError('public_key must be a PEM public key (-----BEGIN PUBLIC KEY-----)', {
      cause: err,
    })
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function callNsm<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (err) {
    throw new NsmFailedError(`the NSM failed ${what}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Exactly `count` NSM random bytes. One GetRandom may answer fewer bytes than asked for (the
 * device returns what it has), so it is called until enough arrive; an empty answer is an error,
 * which also bounds the loop to `count` calls.
 */
async function nsmRandom(nsm: ApiNsm, count: number): Promise<Buffer> {
  const out = Buffer.alloc(count)
  let filled = 0
  while (filled < count) {
    const chunk = await callNsm('GetRandom', () => nsm.getRandom())
    if (!(chunk instanceof Uint8Array) || chunk.length === 0) {
      throw new NsmFailedError(`the NSM answered GetRandom with no bytes (${filled} of ${count} collected)`)
    }
    const take = Math.min(chunk.length, count - filled)
    out.set(chunk.subarray(0, take), filled)
    filled += take
  }
  return out
}

/** Creates the API server; call listen() to start it (the supervisor owns the lifecycle). */
export function createEnclaveApiServer(options: EnclaveApiOptions, deps: EnclaveApiDeps): EnclaveApiServer {
  const resolved = resolveOptions(options)
  const nsm = deps?.nsm
  if (!nsm || typeof nsm.getAttestationDocument !== 'function' || typeof nsm.getRandom !== 'function') {
    throw new InvalidOptionError('deps.nsm must be an NSM client (getAttestationDocument, getRandom)')
  }
  const log = (deps.logger ?? silentLogger).child({ component: 'enclave-api' })
  const replays = new ReplayCache(resolved.replayCacheSize)
  let privateKey: KeyObject | undefined = resolved.encryptionKey
  let publicKey: KeyObject | undefined
  let publicDer: Buffer | undefined
  let state: 'idle' | 'listening' | 'closed' = 'idle'
  let port = 0

  async function ensureKey(): Promise<void> {
    if (privateKey === undefined) {
      // Key material from the NSM (as the Sparsity fork derives its keys), not the OS pool alone.
      const material = await nsmRandom(nsm, SEED_BYTES)
      const seed = createHash('sha384').update(material).digest()
      material.fill(0)
      const ecdh = createECDH('secp384r1')
      ecdh.setPrivateKey(seed)
      const pub = ecdh.getPublicKey()
      privateKey = createPrivateKey({
        key: {
          kty: 'EC',
          crv: 'P-384',
          d: seed.toString('base64url'),
          x: pub.subarray(1, 49).toString('base64url'),
          y: pub.subarray(49).toString('base64url'),
        },
        format: 'jwk',
      })
      seed.fill(0)
    }
    publicKey = createPublicKey(privateKey)
    publicDer = publicKey.export({ format: 'der', type: 'spki' })
  }

  function nonceOf(body: Record<string, unknown>): Buffer {
    const nonce = hexField(body, 'nonce')
    // A legacy 32-byte nonce is truncated to 12, as the Sparsity fork does.
    if (nonce.length === 32) return nonce.subarray(0, NONCE_LENGTH)
    if (nonce.length !== NONCE_LENGTH) throw new BadRequestError(`nonce must be ${NONCE_LENGTH} bytes (hex)`)
    return nonce
  }

  function replayKey(client: KeyObject, nonce: Uint8Array): string {
    return createHash('sha256')
      .update(client.export({ format: 'der', type: 'spki' }))
      .update(nonce)
      .digest('hex')
  }

  const routes: Record<
    string,
    Record<string, (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>>
  > = {
    '/v1/attestation': {
      POST: async (req, res) => {
        const body = await readJson(req, resolved.maxBodyBytes)
        const nonce = bounded('nonce', base64Field(body, 'nonce'))
        // user_data: base64 (enclaver) or a JSON object (the Sparsity fork), put in as its JSON text.
        const rawUserData = body.user_data
        const userData = bounded(
          'user_data',
          typeof rawUserData === 'object' && rawUserData !== null && !Array.isArray(rawUserData)
            ? Buffer.from(JSON.stringify(rawUserData))
            : base64Field(body, 'user_data'),
        )
        // Default public_key: the encryption key, so one document also vouches for /v1/encryption.
        const key = bounded('public_key', publicKeyField(body) ?? publicDer)
        const document = await callNsm('Attestation', () =>
          nsm.getAttestationDocument({
            nonce: nonce ?? null,
            userData: userData ?? null,
            publicKey: key ?? null,
          }),
        )
        res.writeHead(200, { 'content-type': 'application/cbor', 'content-length': document.length })
        res.end(document)
      },
    },
    '/v1/random': {
      GET: async (_req, res, url) => {
        const raw = url.searchParams.get('bytes')
        const count = raw === null ? RANDOM_DEFAULT : Number(raw)
        if (!Number.isInteger(count) || count < 1 || count > RANDOM_MAX) {
          throw new BadRequestError(`bytes must be an integer in 1..${RANDOM_MAX}`)
        }
        const random = await nsmRandom(nsm, count)
        sendJson(res, 200, { random_bytes: `0x${toHex(random)}` })
      },
    },
    '/v1/encryption/public_key': {
      GET: async (_req, res) => {
        sendJson(res, 200, {
          public_key_der: `0x${toHex(publicDer!)}`,
          public_key_pem: publicKey!.export({ format: 'pem', type: 'spki' }),
        })
      },
    },
    '/v1/encryption/decrypt': {
      POST: async (req, res) => {
        const body = await readJson(req, resolved.maxBodyBytes)
        const nonce = nonceOf(body)
        const client = importP384PublicKey(hexField(body, 'client_public_key'), 'client_public_key')
        const data = hexField(body, 'encrypted_data')
        const plaintext = decryptMessage(privateKey!, publicKey!, client, nonce, data)
        // Recorded only after authentication, so forged requests cannot fill the cache.
        if (!replays.add(replayKey(client, nonce))) {
          throw new ReplayedNonceError('this nonce was already used with this client key')
        }
        const text = new TextDecoder('utf-8', { fatal: false }).decode(plaintext)
        sendJson(res, 200, { plaintext: text, plaintext_base64: plaintext.toString('base64') })
      },
    },
    '/v1/encryption/encrypt': {
      POST: async (req, res) => {
        const body = await readJson(req, resolved.maxBodyBytes)
        const plaintext = body.plaintext
        if (typeof plaintext !== 'string') throw new BadRequestError('plaintext must be a string')
        const client = importP384PublicKey(hexField(body, 'client_public_key'), 'client_public_key')
        const nonce = await nsmRandom(nsm, NONCE_LENGTH)
        // Our own nonces join the replay cache, so a reflected reply cannot be fed back to decrypt.
        replays.add(replayKey(client, nonce))
        const sealed = encryptMessage(privateKey!, publicKey!, client, nonce, Buffer.from(plaintext, 'utf8'))
        sendJson(res, 200, {
          encrypted_data: toHex(sealed),
          enclave_public_key: toHex(publicDer!),
          nonce: toHex(nonce),
        })
      },
    },
  }

  const server = createServer({ headersTimeout: 30_000, requestTimeout: 60_000 }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const route = routes[url.pathname]
    const handler = route?.[req.method ?? '']
    const run = async () => {
      if (!route) throw new NotFoundError(`no endpoint ${url.pathname}`)
      if (!handler) {
        res.setHeader('allow', Object.keys(route).join(', '))
        throw new MethodNotAllowedError(
          `${url.pathname} accepts ${Object.keys(route).join(', ')}, not ${req.method}`,
        )
      }
      await handler(req, res, url)
    }
    run().catch((err: unknown) => {
      const error =
        err instanceof EnclaveApiError
          ? err
          : new NsmFailedError(`unexpected failure: ${(err as Error).message}`, { cause: err })
      log.warn({ err: error, code: error.code, path: url.pathname }, 'api request refused')
      if (res.headersSent) return void res.destroy()
      if (error.status >= 400 && !req.complete) res.setHeader('connection', 'close')
      sendJson(res, error.status, { code: error.code, message: error.message })
    })
  })
  server.maxConnections = resolved.maxConnections

  return {
    async listen() {
      if (state !== 'idle')
        throw new InvalidOptionError(`listen() called while ${state}; create a new server`)
      await ensureKey()
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(resolved.port, resolved.host, () => {
          server.off('error', reject)
          resolve()
        })
      })
      state = 'listening'
      const address = server.address()
      port = typeof address === 'object' && address ? address.port : resolved.port
      log.info({ port }, 'enclave api listening')
      return port
    },
    get port() {
      return port
    },
    get encryptionPublicKey() {
      return new Uint8Array(publicDer ?? [])
    },
    close() {
      if (state === 'closed') return Promise.resolve()
      const wasListening = state === 'listening'
      state = 'closed'
      if (!wasListening) return Promise.resolve()
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}
