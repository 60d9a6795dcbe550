import { randomBytes } from 'node:crypto'
import { AttestationFailedError, isPipelineError, ServerIdentityMismatchError } from './errors.js'
import { parseFingerprint } from './identity.js'

/** What a client knows about the server right after the TLS handshake. */
export interface ServerEvidence {
  /** Fingerprint of the key the server proved it holds in the handshake. */
  readonly fingerprint: string
  /** The server's TLS public key, DER SubjectPublicKeyInfo. */
  readonly spki: Buffer
  /** Asks the server (inside the TLS session) for an attestation document carrying `nonce`. */
  attest(nonce: Uint8Array): Promise<Uint8Array>
}

/**
 * Decides whether the server is the one the client meant to reach, before any request is sent.
 * Throws (ServerIdentityMismatchError, AttestationFailedError) to refuse.
 */
export interface ServerVerifier {
  readonly description: string
  verify(evidence: ServerEvidence): Promise<void> | void
}

/** Trusts exactly the listed key fingerprints (`sha256:<hex>`). */
export function pinnedKeyVerifier(fingerprints: readonly string[]): ServerVerifier {
  const pinned = new Set(fingerprints.map((item) => parseFingerprint(item, 'server key')))
  return {
    description: `pinned key ${[...pinned].join(', ')}`,
    verify({ fingerprint }) {
      if (!pinned.has(fingerprint)) {
        throw new ServerIdentityMismatchError(
          `the server presented key ${fingerprint}, which is not the pinned key (${[...pinned].join(', ')}); refusing to talk to it. If the server's key changed on purpose, update --server-key (config key server_key)`,
        )
      }
    },
  }
}

/**
 * Checks an attestation document against the expected nonce and public key (and whatever else
 * it wants: roots, PCRs); throws to refuse. @enclave/attestation's verifier fits:
 * `(doc, { nonce, publicKey }) => verifier.assert(doc, { nonce, publicKey, pcrs })`.
 */
export type AttestationCheck = (
  document: Uint8Array,
  expected: { nonce: Uint8Array; publicKey: Uint8Array },
) => unknown | Promise<unknown>

/**
 * Trusts a server that presents a fresh attestation document whose `public_key` is its TLS key
 * (so the key lives in the attested enclave) and which passes `check` (signature chain, PCRs).
 */
export function attestationVerifier(check: AttestationCheck, description = 'attestation'): ServerVerifier {
  return {
    description,
    async verify(evidence) {
      const nonce = randomBytes(32)
      const document = await evidence.attest(nonce)
      try {
        await check(document, { nonce, publicKey: evidence.spki })
      } catch (error) {
        if (isPipelineError(error)) throw error
        throw new AttestationFailedError(
          `the server's attestation document was refused: ${(error as Error).message}`,
          { cause: error },
        )
      }
    },
  }
}

/** Trusts a server that satisfies every verifier (for example a pinned key and an attestation). */
export function allOf(verifiers: readonly ServerVerifier[]): ServerVerifier {
  return {
    description: verifiers.map((verifier) => verifier.description).join(' + '),
    async verify(evidence) {
      for (const verifier of verifiers) await verifier.verify(evidence)
    },
  }
}
