import type { CoseSign1 } from './cose.js'
import type { AttestationDocument } from './document.js'

/**
 * Why a document was rejected. Stable strings: safe to switch on and to show to users.
 * - malformed: not a COSE_Sign1 / attestation document, or a certificate does not parse
 * - unsupported-algorithm: COSE alg is not ES384 or the leaf key is not P-384
 * - bad-signature: the COSE signature does not verify with the leaf certificate's key
 * - untrusted-root: cabundle[0] is not one of the pinned roots
 * - invalid-chain: a certificate is not signed by the one before it
 * - expired: a certificate is not valid at the verification time (after notAfter or before notBefore)
 * - invalid-constraints: basicConstraints / pathLen / keyUsage / critical extensions violated
 * - pcr-mismatch, debug-mode, nonce-mismatch, user-data-mismatch, public-key-mismatch,
 *   too-old, timestamp-in-future: the policy
 * - no-attestation, key-not-bound: attested TLS (no document in the peer certificate, or the
 *   document does not bind the certificate's key)
 */
export type FailureReason =
  | 'malformed'
  | 'unsupported-algorithm'
  | 'bad-signature'
  | 'untrusted-root'
  | 'invalid-chain'
  | 'expired'
  | 'invalid-constraints'
  | 'pcr-mismatch'
  | 'debug-mode'
  | 'nonce-mismatch'
  | 'user-data-mismatch'
  | 'public-key-mismatch'
  | 'too-old'
  | 'timestamp-in-future'
  | 'no-attestation'
  | 'key-not-bound'

const REASONS: Readonly<Record<FailureReason, true>> = {
  malformed: true,
  'unsupported-algorithm': true,
  'bad-signature': true,
  'untrusted-root': true,
  'invalid-chain': true,
  expired: true,
  'invalid-constraints': true,
  'pcr-mismatch': true,
  'debug-mode': true,
  'nonce-mismatch': true,
  'user-data-mismatch': true,
  'public-key-mismatch': true,
  'too-old': true,
  'timestamp-in-future': true,
  'no-attestation': true,
  'key-not-bound': true,
}
/** Every failure reason, checked complete against the union at compile time. */
export const FAILURE_REASONS = Object.freeze(Object.keys(REASONS) as FailureReason[])

export interface VerificationFailure {
  readonly reason: FailureReason
  readonly message: string
  /** Position in the chain (0 = root … cabundle.length = leaf) when a certificate is at fault. */
  readonly certificate?: number
  /** The PCR index for pcr-mismatch. */
  readonly pcr?: number
}

export type VerificationResult =
  | {
      readonly ok: true
      readonly document: AttestationDocument
      readonly cose: CoseSign1
      readonly failures: readonly []
      /** The time the chain was checked against (ms since the epoch). */
      readonly verifiedAt: number
    }
  | {
      readonly ok: false
      /** The decoded (untrusted) document when decoding got that far. */
      readonly document: AttestationDocument | undefined
      readonly cose: CoseSign1 | undefined
      readonly failures: readonly VerificationFailure[]
      readonly verifiedAt: number
    }
