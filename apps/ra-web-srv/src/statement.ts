/**
 * Statements: a COSE_Sign1 (ES384) over the JSON {path, hash, algorithm, size, timestamp}, signed
 * by a key whose SPKI DER is the public_key of an attestation document. Anyone holding both can
 * check that an enclave with the document's PCRs vouched for the hash.
 */

import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import {
  type AttestationPolicy,
  type AttestationVerifier,
  decodeCoseSign1,
  MalformedError,
  type Nsm,
  signCoseSign1,
  type VerificationFailure,
  verifyCoseSign1,
} from '@enclave/attestation'

export interface StatementBody {
  readonly path: string
  readonly hash: string
  readonly algorithm: 'SHA3-512'
  readonly size: number
}

export interface StatementSigner {
  sign(body: StatementBody): Promise<{ statement: Uint8Array; document: Uint8Array }>
  /** The current document binding the key. */
  document(): Promise<Uint8Array>
}

/** A P-384 key for this process's lifetime; its document is refreshed when older than refreshMs. */
export function createStatementSigner(nsm: Nsm, refreshMs: number): StatementSigner {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  const spki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }))
  let current: { document: Uint8Array; at: number } | undefined
  let inflight: Promise<Uint8Array> | undefined

  async function document(): Promise<Uint8Array> {
    if (current && Date.now() - current.at < refreshMs) return current.document
    inflight ??= nsm
      .getAttestationDocument({ publicKey: spki })
      .then((doc) => {
        current = { document: doc, at: Date.now() }
        return doc
      })
      .finally(() => {
        inflight = undefined
      })
    return inflight
  }

  return {
    document,
    async sign(body) {
      const payload = Buffer.from(JSON.stringify({ ...body, timestamp: Date.now() }))
      return {
        statement: signCoseSign1(payload, privateKey, { algorithm: 'ES384' }),
        document: await document(),
      }
    },
  }
}

export type StatementCheck =
  | { ok: true; body: StatementBody & { timestamp: number }; moduleId: string }
  | { ok: false; failures: VerificationFailure[] | { reason: string; message: string }[] }

/** Verifies the document under `policy`, then the statement's signature with the document's public_key. */
export function verifyStatement(
  statement: Uint8Array,
  document: Uint8Array,
  verifier: AttestationVerifier,
  policy?: AttestationPolicy,
): StatementCheck {
  const result = verifier.verify(document, policy)
  if (!result.ok) return { ok: false, failures: [...result.failures] }
  const publicKey = result.document.publicKey
  if (!publicKey)
    return { ok: false, failures: [{ reason: 'key-not-bound', message: 'the document has no public_key' }] }
  try {
    const key = createPublicKey({ key: Buffer.from(publicKey), format: 'der', type: 'spki' })
    const cose = verifyCoseSign1(decodeCoseSign1(statement), key, { algorithms: ['ES384'] })
    const body = JSON.parse(Buffer.from(cose.payload).toString('utf8')) as StatementBody & {
      timestamp: number
    }
    if (typeof body?.path !== 'string' || typeof body.hash !== 'string')
      throw new MalformedError('statement body lacks path or hash')
    return { ok: true, body, moduleId: result.document.moduleId }
  } catch (err) {
    const reason =
      (err as { code?: string }).code === 'ENCLAVE_ATTESTATION_COSE_SIGNATURE' ? 'bad-signature' : 'malformed'
    return { ok: false, failures: [{ reason, message: `statement: ${(err as Error).message}` }] }
  }
}
