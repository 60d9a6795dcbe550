/**
 * @enclave/kms/dev-endpoint: a local KMS-compatible HTTPS endpoint for DEVELOPMENT, so an enclave
 * app's KMS code (through odyn's KMS proxy, or `attachRecipient`) can be exercised under
 * `enclaver run --simulate` and in tests, where no AWS endpoint is reachable.
 *
 * IT DOES NOT PROTECT KEYS. Its master key lives in this process's memory and is lost when it
 * stops; it implements only the JSON 1.1 actions below with KMS's Recipient semantics. Never
 * point production code at it.
 *
 * What it does check, like KMS: the SigV4 signature of every request (only the given
 * credentials), and for a request with a `Recipient`, the attestation document (with the verifier
 * you pass, e.g. @enclave/attestation's pinned to the dev NSM's root) and PCR conditions like a key
 * policy's `kms:RecipientAttestation:PCRn`; it then answers with a real CMS envelope
 * (`CiphertextForRecipient`) sealed to the document's public key instead of the plaintext.
 * Actions: Encrypt, Decrypt, GenerateDataKey, GenerateDataKeyPair (ECC_NIST_P256),
 * DeriveSharedSecret, GetPublicKey, GenerateRandom.
 *
 * @example
 * ```ts
 * import { createAttestationVerifier } from '@enclave/attestation'
 * import { startDevKmsEndpoint } from '@enclave/kms/dev-endpoint'
 *
 * const kms = await startDevKmsEndpoint({
 *   tls: { key, cert },                               // a certificate for 127.0.0.1
 *   credentials: { accessKeyId: 'AKIADEV', secretAccessKey: 'dev-secret' },
 *   verifier: createAttestationVerifier({ roots: [devNsmRootPem] }),
 *   pcrs: { 0: pcr0 },
 * })
 * // manifest: kms_proxy.endpoints: { us-east-1: kms.url }
 * ```
 */

import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto'
import { createServer, type Server } from 'node:https'
import { Sha256 } from '@aws-crypto/sha256-js'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import { InvalidOptionError } from './errors.js'
import { sealForRecipient } from './seal.js'

/** The slice of @enclave/attestation's AttestationVerifier the endpoint uses. */
export interface DevKmsVerifier {
  verify(
    document: Uint8Array,
    policy: { readonly pcrs: Readonly<Record<number, string>> },
  ): {
    readonly ok: boolean
    readonly document?: { readonly publicKey: Uint8Array | null } | undefined
    readonly failures: readonly { readonly reason: string }[]
  }
}

export interface DevKmsOptions {
  /** The HTTPS certificate and key (PEM); the KMS proxy must trust the certificate (`ca`, NODE_EXTRA_CA_CERTS). */
  readonly tls: { readonly key: string | Buffer; readonly cert: string | Buffer }
  /** The only credentials whose signatures are accepted. */
  readonly credentials: {
    readonly accessKeyId: string
    readonly secretAccessKey: string
    readonly sessionToken?: string
  }
  /** Checks Recipient attestation documents (pin the root you trust: the dev NSM's under the simulator). */
  readonly verifier: DevKmsVerifier
  /** PCR conditions on Recipient documents, index → hex. @default none */
  readonly pcrs?: Readonly<Record<number, string>>
  /** @default '127.0.0.1' */
  readonly host?: string
  /** 0 picks a free port. @default 0 */
  readonly port?: number
  /** Largest request body, bytes. @default 65536 */
  readonly maxBodyBytes?: number
}

export interface DevKmsEndpoint {
  /** `https://<host>:<port>`: the value for `kms_proxy.endpoints.<region>`. */
  readonly url: string
  /** Accepted requests, the last 1000: the action and its parsed body (for checks in demos and tests). */
  readonly requests: { readonly action: string; readonly body: Record<string, unknown> }[]
  /** Behave like an endpoint without Recipient support (answer in the plain fields). @default false */
  ignoreRecipient: boolean
  /** Answer chunked, with hop-by-hop headers (one a custom name listed in Connection). @default false */
  hopByHop: boolean
  close(): Promise<void>
}

class KmsFault extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message)
  }
}

/** Requests kept in `requests` (the oldest are dropped): a long demo must not grow without bound. */
const MAX_RECORDED = 1000

const b64 = (data: Uint8Array) => Buffer.from(data).toString('base64')

/** Starts the development endpoint. See the module doc: it does not protect keys. */
export async function startDevKmsEndpoint(options: DevKmsOptions): Promise<DevKmsEndpoint> {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionError('startDevKmsEndpoint() needs an options object')
  if (!options.tls?.key || !options.tls?.cert)
    throw new InvalidOptionError(
      'tls.key and tls.cert are required (PEM; a certificate for the listen address)',
    )
  if (!options.credentials?.accessKeyId || !options.credentials?.secretAccessKey)
    throw new InvalidOptionError('credentials.accessKeyId and credentials.secretAccessKey are required')
  if (typeof options.verifier?.verify !== 'function')
    throw new InvalidOptionError(
      'verifier is required: e.g. createAttestationVerifier({ roots: [rootPem] }) from @enclave/attestation',
    )
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidOptionError(`port must be an integer from 0 to 65535, got ${String(port)}`)
  const maxBodyBytes = options.maxBodyBytes ?? 65_536
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1)
    throw new InvalidOptionError(`maxBodyBytes must be a positive integer, got ${String(maxBodyBytes)}`)
  const host = options.host ?? '127.0.0.1'
  const credentials = { ...options.credentials }
  const pcrs = { ...(options.pcrs ?? {}) }
  const masterKey = randomBytes(32)
  const agreementKeys = new Map<string, KeyObject>()
  const requests: DevKmsEndpoint['requests'] = []

  function wrap(keyId: string, plaintext: Uint8Array): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', masterKey, iv)
    cipher.setAAD(Buffer.from(keyId))
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
    const id = Buffer.from(keyId)
    if (id.length > 255) throw new KmsFault('ValidationException', 'KeyId is longer than 255 bytes')
    return b64(Buffer.concat([Buffer.from([id.length]), id, iv, cipher.getAuthTag(), ct]))
  }

  function unwrap(blob: string): { keyId: string; plaintext: Buffer } {
    const data = Buffer.from(blob, 'base64')
    try {
      const keyId = data.subarray(1, 1 + data[0]!).toString()
      const rest = data.subarray(1 + data[0]!)
      const decipher = createDecipheriv('aes-256-gcm', masterKey, rest.subarray(0, 12))
      decipher.setAAD(Buffer.from(keyId))
      decipher.setAuthTag(rest.subarray(12, 28))
      return { keyId, plaintext: Buffer.concat([decipher.update(rest.subarray(28)), decipher.final()]) }
    } catch {
      throw new KmsFault('InvalidCiphertextException', 'the ciphertext is not valid')
    }
  }

  async function checkSignature(headers: Record<string, string>, body: Buffer): Promise<void> {
    const auth = headers.authorization ?? ''
    const m =
      /Credential=([^/]+)\/(\d{8})\/([^/]+)\/kms\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]+)/.exec(
        auth,
      )
    if (!m) throw new KmsFault('IncompleteSignatureException', 'no SigV4 authorization')
    const [, accessKeyId, , region, signedHeaders, signature] = m as unknown as string[]
    if (accessKeyId !== credentials.accessKeyId)
      throw new KmsFault('UnrecognizedClientException', 'unknown access key')
    const only: Record<string, string> = {}
    for (const name of signedHeaders!.split(';')) only[name] = headers[name] ?? ''
    const date = headers['x-amz-date'] ?? ''
    const signingDate = new Date(
      `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`,
    )
    if (Number.isNaN(signingDate.getTime()))
      throw new KmsFault('IncompleteSignatureException', 'no X-Amz-Date')
    const signer = new SignatureV4({ service: 'kms', region: region!, sha256: Sha256, credentials })
    const resigned = await signer.sign(
      new HttpRequest({ method: 'POST', protocol: 'https:', hostname: host, path: '/', headers: only, body }),
      { signingDate },
    )
    const expected = /Signature=([0-9a-f]+)/.exec(String(resigned.headers.authorization))?.[1]
    if (expected !== signature)
      throw new KmsFault('InvalidSignatureException', 'the signature does not match')
  }

  function recipientKey(body: Record<string, unknown>): KeyObject | undefined {
    const recipient = body.Recipient as
      | { AttestationDocument?: string; KeyEncryptionAlgorithm?: string }
      | undefined
    if (recipient === undefined) return undefined
    if (recipient.KeyEncryptionAlgorithm !== 'RSAES_OAEP_SHA_256')
      throw new KmsFault('ValidationException', 'KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256')
    const result = options.verifier.verify(Buffer.from(recipient.AttestationDocument ?? '', 'base64'), {
      pcrs,
    })
    if (!result.ok)
      throw new KmsFault(
        'AccessDeniedException',
        `Recipient attestation refused: ${result.failures.map((f) => f.reason).join(', ')}`,
      )
    const spki = result.document?.publicKey
    if (!spki) throw new KmsFault('ValidationException', 'the attestation document has no public_key')
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
    if (key.asymmetricKeyType !== 'rsa') throw new KmsFault('ValidationException', 'public_key is not RSA')
    return key
  }

  /** Puts the secret in `field`, or seals it into CiphertextForRecipient when a Recipient is present. */
  function deliver(
    out: Record<string, unknown>,
    field: string,
    secret: Uint8Array,
    to: KeyObject | undefined,
  ) {
    if (to && !endpoint.ignoreRecipient) out.CiphertextForRecipient = b64(sealForRecipient(secret, to))
    else out[field] = b64(secret)
    return out
  }

  function act(action: string, body: Record<string, unknown>): Record<string, unknown> {
    const keyId = typeof body.KeyId === 'string' ? body.KeyId : ''
    const to = recipientKey(body)
    switch (action) {
      case 'Encrypt':
        return { KeyId: keyId, CiphertextBlob: wrap(keyId, Buffer.from(String(body.Plaintext), 'base64')) }
      case 'Decrypt': {
        const { keyId: id, plaintext } = unwrap(String(body.CiphertextBlob))
        return deliver({ KeyId: id, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }, 'Plaintext', plaintext, to)
      }
      case 'GenerateDataKey': {
        const length =
          typeof body.NumberOfBytes === 'number' ? body.NumberOfBytes : body.KeySpec === 'AES_128' ? 16 : 32
        if (!Number.isInteger(length) || length < 1 || length > 1024)
          throw new KmsFault('ValidationException', 'NumberOfBytes must be 1-1024')
        const key = randomBytes(length)
        return deliver({ KeyId: keyId, CiphertextBlob: wrap(keyId, key) }, 'Plaintext', key, to)
      }
      case 'GenerateDataKeyPair': {
        if (body.KeyPairSpec !== 'ECC_NIST_P256')
          throw new KmsFault('ValidationException', 'only ECC_NIST_P256 here')
        const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
        const priv = pair.privateKey.export({ format: 'der', type: 'pkcs8' })
        return deliver(
          {
            KeyId: keyId,
            KeyPairSpec: 'ECC_NIST_P256',
            PublicKey: b64(pair.publicKey.export({ format: 'der', type: 'spki' })),
            PrivateKeyCiphertextBlob: wrap(keyId, priv),
          },
          'PrivateKeyPlaintext',
          priv,
          to,
        )
      }
      case 'DeriveSharedSecret': {
        let own = agreementKeys.get(keyId)
        if (!own) {
          own = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
          agreementKeys.set(keyId, own)
        }
        const peer = createPublicKey({
          key: Buffer.from(String(body.PublicKey), 'base64'),
          format: 'der',
          type: 'spki',
        })
        const secret = diffieHellman({ privateKey: own, publicKey: peer })
        return deliver({ KeyId: keyId, KeyAgreementAlgorithm: 'ECDH' }, 'SharedSecret', secret, to)
      }
      case 'GetPublicKey': {
        const own = agreementKeys.get(keyId)
        if (!own) throw new KmsFault('NotFoundException', `no key ${keyId}`)
        return { KeyId: keyId, PublicKey: b64(createPublicKey(own).export({ format: 'der', type: 'spki' })) }
      }
      case 'GenerateRandom': {
        const length = Number(body.NumberOfBytes ?? 32)
        if (!Number.isInteger(length) || length < 1 || length > 1024)
          throw new KmsFault('ValidationException', 'NumberOfBytes must be 1-1024')
        return deliver({}, 'Plaintext', randomBytes(length), to)
      }
      default:
        throw new KmsFault(
          'UnsupportedOperationException',
          `${action} is not implemented by the dev endpoint`,
        )
    }
  }

  const server: Server = createServer({ key: options.tls.key, cert: options.tls.cert }, (req, res) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > maxBodyBytes) {
        res.writeHead(413).end()
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', async () => {
      const body = Buffer.concat(chunks)
      const action = String(req.headers['x-amz-target'] ?? '').replace(/^TrentService\./, '')
      let status = 200
      let answer: Record<string, unknown>
      try {
        await checkSignature(req.headers as Record<string, string>, body)
        const parsed = JSON.parse(body.toString() || '{}') as Record<string, unknown>
        requests.push({ action, body: parsed })
        if (requests.length > MAX_RECORDED) requests.shift()
        answer = act(action, parsed)
      } catch (err) {
        status = 400
        answer =
          err instanceof KmsFault
            ? { __type: err.type, message: err.message }
            : { __type: 'SerializationException', message: String((err as Error)?.message ?? err) }
      }
      const text = JSON.stringify(answer)
      res.writeHead(status, {
        'content-type': 'application/x-amz-json-1.1',
        'x-amzn-requestid': randomBytes(8).toString('hex'),
        ...(endpoint.hopByHop
          ? {
              'transfer-encoding': 'chunked',
              connection: 'keep-alive, x-amzn-query-error',
              'keep-alive': 'timeout=61',
              'x-amzn-query-error': 'Hop.OnlyForThisConnection;Sender',
            }
          : {}),
      })
      if (endpoint.hopByHop) {
        // Two chunks, so the body really travels chunked.
        res.write(text.slice(0, 5))
        res.end(text.slice(5))
      } else res.end(text)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = (server.address() as { port: number }).port
  let closing: Promise<void> | undefined
  const endpoint: DevKmsEndpoint = {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    requests,
    ignoreRecipient: false,
    hopByHop: false,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
  return endpoint
}
