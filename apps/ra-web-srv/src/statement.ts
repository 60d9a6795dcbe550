/**
 * Statements: a COSE_Sign1 (ES384) over the JSON {path, hash, algorithm, size, timestamp}, signed
 * by a key the enclave chose for statements. Its document carries the key's SPKI DER as public_key
 * AND user_data = SHA-384(STATEMENT_KEY_TAG ‖ SPKI DER). The tag is what makes it the statement
 * key: /attestation can hand anyone a document with their own public_key (when allowed) but never
 * with this tag in user_data, so a document for a caller's key cannot vouch for a statement.
 */

import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import {
  type AttestationPolicy,
  type AttestationVerifier,
  decodeCoseSign1,
  MalformedError,
  type Nsm,
  signCoseSign1,
  taggedDigest,
  type VerificationFailure,
  verifyCoseSign1,
} from '@enclave/attestation'

/** Domain-separation tag of the statement key's user_data binding. */
export const STATEMENT_KEY_TAG = 'enclave-framework/ra-web-srv/statement-key/v1'

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
      .getAttestationDocument({ publicKey: spki, userData: taggedDigest(STATEMENT_KEY_TAG, spki) })
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

export interface VerifyStatementOptions {
  /**
   * Accept a document whose public_key is not tagged as the statement key in user_data. WEAKER:
   * such a document may have been obtained for any caller's key (e.g. from an /attestation
   * endpoint that forwards public_key), so it proves nothing about who signed. @default false
   */
  readonly allowBarePublicKey?: boolean
}

/**
 * Verifies the document under `policy`, that it binds its public_key as the statement key
 * (user_data = SHA-384(STATEMENT_KEY_TAG ‖ public_key)), then the statement's signature with it.
 */
export function verifyStatement(
  statement: Uint8Array,
  document: Uint8Array,
  verifier: AttestationVerifier,
  policy?: AttestationPolicy,
  options: VerifyStatementOptions = {},
): StatementCheck {
  const result = verifier.verify(document, policy)
  if (!result.ok) return { ok: false, failures: [...result.failures] }
  const { publicKey, userData } = result.document
  if (!publicKey)
    return { ok: false, failures: [{ reason: 'key-not-bound', message: 'the document has no public_key' }] }
  const tagged = userData ? Buffer.from(userData).equals(taggedDigest(STATEMENT_KEY_TAG, publicKey)) : false
  if (!tagged && !options.allowBarePublicKey) {
    return {
      ok: false,
      failures: [
        {
          reason: 'key-not-bound',
          message:
            'the document does not bind its public_key as the statement key ' +
            `(user_data must be SHA-384("${STATEMENT_KEY_TAG}" ‖ public_key)); ` +
            'it may have been obtained for any caller key',
        },
      ],
    }
  }
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
