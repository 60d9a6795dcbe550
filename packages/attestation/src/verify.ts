/**
 * Attestation-document verification (nsm-api attestation_process.md): COSE_Sign1 ES384 over the
 * payload as received, the chain from the leaf through cabundle to a pinned root, every
 * certificate's validity, basicConstraints / pathLen / keyUsage, then the caller's policy.
 * Every failure is collected, not only the first.
 */

import { bytesEqual, isAllZero, toHex } from './bytes.js'
import { checkCoseSign1Signature } from './cose.js'
import { type AttestationDocument, type ParsedAttestation, parseAttestationDocument } from './document.js'
import { InvalidOptionError, MalformedError, VerificationFailedError } from './errors.js'
import {
  type AttestationPolicy,
  type ResolvedPolicy,
  resolveCacheSize,
  resolvePolicy,
  resolveRoots,
  type VerifierOptions,
} from './options.js'
import type { VerificationFailure, VerificationResult } from './result.js'
import { type CertInfo, DIGITAL_SIGNATURE, fingerprintOf, KEY_CERT_SIGN, parseCertificate } from './x509.js'

export interface AttestationVerifier {
  /** Verifies a document; never throws for a bad document (the result lists every failure). */
  verify(document: Uint8Array, policy?: AttestationPolicy): VerificationResult
  /** Like verify, but returns the document or throws VerificationFailedError. */
  assert(document: Uint8Array, policy?: AttestationPolicy): AttestationDocument
}

const ES384_ID = -35

/** A small LRU over Map insertion order; bounded so hostile input cannot grow it. */
class Lru<V> {
  readonly #max: number
  readonly #map = new Map<string, V>()
  constructor(max: number) {
    this.#max = max
  }
  get(key: string): V | undefined {
    const value = this.#map.get(key)
    if (value !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, value)
    }
    return value
  }
  set(key: string, value: V): void {
    if (this.#max === 0) return
    this.#map.delete(key)
    this.#map.set(key, value)
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value as string)
  }
}

function describeTime(ms: number): string {
  return new Date(ms).toISOString()
}

/**
 * Creates a verifier. It pins `roots` (default: AWS Nitro Enclaves Root G1) and caches parsed
 * certificates and verified issuer→subject signatures by DER SHA-256, so repeated chains cost
 * only the validity checks and one ES384 verification.
 */
export function createAttestationVerifier(options: VerifierOptions = {}): AttestationVerifier {
  const roots = resolveRoots(options.roots)
  const basePolicy = resolvePolicy(options)
  const cacheSize = resolveCacheSize(options.cacheSize)
  const certs = new Lru<CertInfo>(cacheSize)
  const links = new Lru<true>(cacheSize)

  for (const root of options.roots ?? []) {
    if (root instanceof Uint8Array) {
      try {
        parseCertificate(root, 'root')
      } catch (err) {
        throw new InvalidOptionError(`roots: ${(err as Error).message}`, { cause: err })
      }
    }
  }

  function certInfo(der: Uint8Array, label: string): CertInfo {
    const fingerprint = fingerprintOf(der)
    const cached = certs.get(fingerprint)
    if (cached) return cached
    const info = parseCertificate(der, label, fingerprint)
    certs.set(fingerprint, info)
    return info
  }

  function issuedBy(child: CertInfo, issuer: CertInfo): boolean {
    const key = `${child.fingerprint}<${issuer.fingerprint}`
    if (links.get(key)) return true
    const ok = child.x509.checkIssued(issuer.x509) && child.x509.verify(issuer.publicKey)
    if (ok) links.set(key, true)
    return ok
  }

  function checkChain(
    doc: AttestationDocument,
    at: number,
    failures: VerificationFailure[],
  ): CertInfo | undefined {
    const ders = [...doc.cabundle, doc.certificate]
    const leafIndex = ders.length - 1
    const label = (i: number) =>
      i === leafIndex ? 'leaf certificate' : i === 0 ? 'cabundle[0] (root)' : `cabundle[${i}]`
    const infos: CertInfo[] = []
    for (let i = 0; i < ders.length; i++) {
      try {
        infos.push(certInfo(ders[i]!, label(i)))
      } catch (err) {
        if (!(err instanceof MalformedError)) throw err
        failures.push({ reason: 'malformed', message: err.message, certificate: i })
        return undefined
      }
    }
    if (!roots.has(infos[0]!.fingerprint)) {
      failures.push({
        reason: 'untrusted-root',
        message: `cabundle[0] (${infos[0]!.subject}, SHA-256 ${infos[0]!.fingerprint}) is not a pinned root`,
        certificate: 0,
      })
    }
    for (let i = 0; i < infos.length; i++) {
      const info = infos[i]!
      if (i > 0 && !issuedBy(info, infos[i - 1]!)) {
        failures.push({
          reason: 'invalid-chain',
          message: `${label(i)} (${info.subject}) is not signed by ${label(i - 1)} (${infos[i - 1]!.subject})`,
          certificate: i,
        })
      }
      if (at < info.notBefore || at > info.notAfter) {
        const when =
          at > info.notAfter
            ? `expired at ${describeTime(info.notAfter)}`
            : `not valid before ${describeTime(info.notBefore)}`
        failures.push({
          reason: 'expired',
          message: `${label(i)} (${info.subject}) ${when}; verification time ${describeTime(at)}`,
          certificate: i,
        })
      }
      if (info.unknownCritical.length > 0) {
        failures.push({
          reason: 'invalid-constraints',
          message: `${label(i)} has unsupported critical extensions ${info.unknownCritical.join(', ')}`,
          certificate: i,
        })
      }
      if (i < leafIndex) {
        // Intermediate CA certificates that follow this one, the leaf excluded (RFC 5280 6.1.4).
        const below = leafIndex - 1 - i
        if (!info.isCA) {
          failures.push({
            reason: 'invalid-constraints',
            message: `${label(i)} is not a CA certificate`,
            certificate: i,
          })
        } else if (info.pathLen !== undefined && below > info.pathLen) {
          failures.push({
            reason: 'invalid-constraints',
            message: `${label(i)} allows a path length of ${info.pathLen} but ${below} CA certificates follow it`,
            certificate: i,
          })
        }
        if (info.keyUsage !== undefined && (info.keyUsage & KEY_CERT_SIGN) === 0) {
          failures.push({
            reason: 'invalid-constraints',
            message: `${label(i)} keyUsage lacks keyCertSign`,
            certificate: i,
          })
        }
      } else {
        if (info.isCA) {
          failures.push({
            reason: 'invalid-constraints',
            message: 'the leaf certificate is a CA certificate',
            certificate: i,
          })
        }
        if (info.keyUsage !== undefined && (info.keyUsage & DIGITAL_SIGNATURE) === 0) {
          failures.push({
            reason: 'invalid-constraints',
            message: 'leaf certificate keyUsage lacks digitalSignature',
            certificate: i,
          })
        }
      }
    }
    return infos[leafIndex]
  }

  function checkSignature(parsed: ParsedAttestation, leaf: CertInfo, failures: VerificationFailure[]): void {
    const { cose } = parsed
    const key = leaf.publicKey
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
      failures.push({
        reason: 'unsupported-algorithm',
        message: 'the leaf certificate key is not ECDSA P-384',
      })
      return
    }
    if (cose.algorithmId !== ES384_ID) {
      failures.push({
        reason: 'unsupported-algorithm',
        message: `COSE alg is ${String(cose.algorithmId)}; attestation documents use ES384 (-35)`,
      })
      return
    }
    if (!checkCoseSign1Signature(cose, key)) {
      failures.push({
        reason: 'bad-signature',
        message: 'the COSE_Sign1 signature does not verify with the leaf certificate key',
      })
    }
  }

  function checkPolicy(
    doc: AttestationDocument,
    policy: ResolvedPolicy,
    at: number,
    failures: VerificationFailure[],
  ): void {
    for (const [index, expected] of policy.pcrs) {
      const actual = doc.pcrs.get(index)
      if (!actual || !bytesEqual(actual, expected)) {
        failures.push({
          reason: 'pcr-mismatch',
          message: `PCR${index} is ${actual ? toHex(actual) : 'absent'}; expected ${toHex(expected)}`,
          pcr: index,
        })
      }
    }
    const pcr0 = doc.pcrs.get(0)
    if (!policy.allowDebug && pcr0 && isAllZero(pcr0)) {
      failures.push({
        reason: 'debug-mode',
        message: 'PCR0 is all zero: the enclave runs in debug mode (allowDebug to accept)',
      })
    }
    const fields = [
      ['nonce', 'nonce-mismatch', doc.nonce, policy.nonce],
      ['user_data', 'user-data-mismatch', doc.userData, policy.userData],
      ['public_key', 'public-key-mismatch', doc.publicKey, policy.publicKey],
    ] as const
    for (const [name, reason, actual, expected] of fields) {
      if (expected === undefined) continue
      if (expected === null ? actual !== null : actual === null || !bytesEqual(actual, expected)) {
        failures.push({
          reason,
          message: `${name} is ${actual === null ? 'absent' : `${actual.length} bytes that differ`}; expected ${expected === null ? 'absent' : `${expected.length} given bytes`}`,
        })
      }
    }
    if (policy.maxAgeMs !== undefined && doc.timestamp < at - policy.maxAgeMs) {
      failures.push({
        reason: 'too-old',
        message: `document timestamp ${describeTime(doc.timestamp)} is older than ${policy.maxAgeMs} ms at ${describeTime(at)}`,
      })
    }
    if (doc.timestamp > at + policy.clockSkewMs) {
      failures.push({
        reason: 'timestamp-in-future',
        message: `document timestamp ${describeTime(doc.timestamp)} is after the verification time ${describeTime(at)}`,
      })
    }
  }

  function verify(bytes: Uint8Array, overrides?: AttestationPolicy): VerificationResult {
    const policy = overrides ? resolvePolicy(overrides, basePolicy) : basePolicy
    const at = policy.at ?? Date.now()
    let parsed: ParsedAttestation
    try {
      parsed = parseAttestationDocument(bytes)
    } catch (err) {
      if (!(err instanceof MalformedError)) throw err
      return {
        ok: false,
        document: undefined,
        cose: undefined,
        failures: [{ reason: 'malformed', message: err.message }],
        verifiedAt: at,
      }
    }
    const failures: VerificationFailure[] = []
    const leaf = checkChain(parsed.document, at, failures)
    if (leaf) checkSignature(parsed, leaf, failures)
    checkPolicy(parsed.document, policy, at, failures)
    if (failures.length === 0) {
      return { ok: true, document: parsed.document, cose: parsed.cose, failures: [], verifiedAt: at }
    }
    return { ok: false, document: parsed.document, cose: parsed.cose, failures, verifiedAt: at }
  }

  return {
    verify,
    assert(bytes, policy) {
      const result = verify(bytes, policy)
      if (!result.ok) throw new VerificationFailedError(result.failures)
      return result.document
    },
  }
}
