/**
 * A local KMS-compatible HTTPS endpoint (JSON 1.1, X-Amz-Target TrentService.*) with Recipient
 * semantics, for tests: it checks each request's SigV4 signature against known credentials,
 * verifies Recipient attestation documents with @enclave/attestation (pinning the dev NSM's root),
 * applies PCR conditions like a key policy's kms:RecipientAttestation:PCRn, and answers with a real
 * CMS envelope to the document's public key instead of the plaintext.
 */

import { execFileSync } from 'node:child_process'
import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import { join } from 'node:path'
import { Sha256 } from '@aws-crypto/sha256-js'
import { createAttestationVerifier } from '@enclave/attestation'
import { makeTempDir } from '@enclave/test-helpers'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import { sealForRecipient } from './seal.js'

export interface FakeKmsOptions {
  /** Root (PEM) the Recipient documents must chain to. */
  root: string
  /** The only credentials whose signatures are accepted. */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  /** PCR conditions on Recipient documents (index → hex). */
  pcrs?: Record<number, string>
}

export interface FakeKms {
  readonly url: string
  readonly caPem: string
  /** Every request seen: the action and the parsed body. */
  readonly requests: { action: string; body: Record<string, unknown> }[]
  /** Behave like an endpoint without Recipient support (answers in the plain fields). */
  ignoreRecipient: boolean
  /** Answer chunked with hop-by-hop headers, one of them a custom name listed in Connection. */
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

const b64 = (data: Uint8Array) => Buffer.from(data).toString('base64')

/** A self-signed certificate for 127.0.0.1, made with openssl. */
export function makeLoopbackCert(): { key: string; cert: string } {
  const dir = makeTempDir('fake-kms-')
  try {
    const key = join(dir.path, 'key.pem')
    const cert = join(dir.path, 'cert.pem')
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    )
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') }
  } finally {
    dir.remove()
  }
}

export async function startFakeKms(options: FakeKmsOptions): Promise<FakeKms> {
  const tls = makeLoopbackCert()
  const verifier = createAttestationVerifier({ roots: [options.root] })
  const masterKey = randomBytes(32)
  const agreementKeys = new Map<string, KeyObject>()
  const requests: FakeKms['requests'] = []

  function wrap(keyId: string, plaintext: Uint8Array): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', masterKey, iv)
    cipher.setAAD(Buffer.from(keyId))
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
    return b64(Buffer.concat([Buffer.from([keyId.length]), Buffer.from(keyId), iv, cipher.getAuthTag(), ct]))
  }

  function unwrap(blob: string): { keyId: string; plaintext: Buffer } {
    const data = Buffer.from(blob, 'base64')
    const keyId = data.subarray(1, 1 + data[0]!).toString()
    const rest = data.subarray(1 + data[0]!)
    try {
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
    if (accessKeyId !== options.credentials.accessKeyId)
      throw new KmsFault('UnrecognizedClientException', 'unknown access key')
    const only: Record<string, string> = {}
    for (const name of signedHeaders!.split(';')) only[name] = headers[name] ?? ''
    const date = headers['x-amz-date'] ?? ''
    const signingDate = new Date(
      `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T${date.slice(9, 11)}:${date.slice(11, 13)}:${date.slice(13, 15)}Z`,
    )
    const signer = new SignatureV4({
      service: 'kms',
      region: region!,
      sha256: Sha256,
      credentials: options.credentials,
    })
    const resigned = await signer.sign(
      new HttpRequest({
        method: 'POST',
        protocol: 'https:',
        hostname: '127.0.0.1',
        path: '/',
        headers: only,
        body,
      }),
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
    if (recipient.KeyEncryptionAlgorithm !== 'RSAES_OAEP_SHA_256') {
      throw new KmsFault('ValidationException', 'KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256')
    }
    const result = verifier.verify(Buffer.from(recipient.AttestationDocument ?? '', 'base64'), {
      pcrs: options.pcrs ?? {},
    })
    if (!result.ok) {
      throw new KmsFault(
        'AccessDeniedException',
        `Recipient attestation refused: ${result.failures.map((f) => f.reason).join(', ')}`,
      )
    }
    if (!result.document.publicKey)
      throw new KmsFault('ValidationException', 'the attestation document has no public_key')
    const key = createPublicKey({ key: Buffer.from(result.document.publicKey), format: 'der', type: 'spki' })
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
    if (to && !fake.ignoreRecipient) out.CiphertextForRecipient = b64(sealForRecipient(secret, to))
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
      case 'GenerateRandom':
        return deliver({}, 'Plaintext', randomBytes(Number(body.NumberOfBytes ?? 32)), to)
      default:
        throw new KmsFault('UnsupportedOperationException', `${action} is not implemented here`)
    }
  }

  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const body = Buffer.concat(chunks)
      const action = String(req.headers['x-amz-target'] ?? '').replace(/^TrentService\./, '')
      let status = 200
      let answer: Record<string, unknown>
      try {
        await checkSignature(req.headers as Record<string, string>, body)
        const parsed = JSON.parse(body.toString() || '{}') as Record<string, unknown>
        requests.push({ action, body: parsed })
        answer = act(action, parsed)
      } catch (err) {
        status = 400
        answer =
          err instanceof KmsFault
            ? { __type: err.type, message: err.message }
            : { __type: 'InternalFailure', message: String(err) }
      }
      const text = JSON.stringify(answer)
      res.writeHead(status, {
        'content-type': 'application/x-amz-json-1.1',
        'x-amzn-requestid': randomBytes(8).toString('hex'),
        ...(fake.hopByHop
          ? {
              'transfer-encoding': 'chunked',
              connection: 'keep-alive, x-amzn-query-error',
              'keep-alive': 'timeout=61',
              'x-amzn-query-error': 'Hop.OnlyForThisConnection;Sender',
            }
          : {}),
      })
      if (fake.hopByHop) {
        // Two chunks, so the body really travels chunked.
        res.write(text.slice(0, 5))
        res.end(text.slice(5))
      } else res.end(text)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const fake: FakeKms = {
    ignoreRecipient: false,
    hopByHop: false,
    url: `https://127.0.0.1:${port}`,
    caPem: tls.cert,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
  return fake
}
