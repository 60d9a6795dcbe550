/** The ECDSA COSE algorithms (RFC 9053 section 2.1) and their curves, hashes and sizes. */

import type { KeyObject } from 'node:crypto'
import { CoseBadKeyError } from './errors.js'

export type CoseAlgorithm = 'ES256' | 'ES384' | 'ES512'

export interface CoseAlgorithmInfo {
  /** The COSE alg value in the protected header. */
  readonly id: -7 | -35 | -36
  readonly hash: 'sha256' | 'sha384' | 'sha512'
  /** OpenSSL curve name, as node:crypto reports it in asymmetricKeyDetails.namedCurve. */
  readonly curve: 'prime256v1' | 'secp384r1' | 'secp521r1'
  /** JOSE / NIST curve name. */
  readonly jwkCurve: 'P-256' | 'P-384' | 'P-521'
  /** Bytes of r (and of s) in the raw signature. */
  readonly size: 32 | 48 | 66
  /** Bytes of the raw r‖s signature (IEEE P1363). */
  readonly signatureLength: 64 | 96 | 132
}

export const COSE_ALGORITHMS: Readonly<Record<CoseAlgorithm, CoseAlgorithmInfo>> = Object.freeze({
  ES256: Object.freeze({
    id: -7,
    hash: 'sha256',
    curve: 'prime256v1',
    jwkCurve: 'P-256',
    size: 32,
    signatureLength: 64,
  }),
  ES384: Object.freeze({
    id: -35,
    hash: 'sha384',
    curve: 'secp384r1',
    jwkCurve: 'P-384',
    size: 48,
    signatureLength: 96,
  }),
  ES512: Object.freeze({
    id: -36,
    hash: 'sha512',
    curve: 'secp521r1',
    jwkCurve: 'P-521',
    size: 66,
    signatureLength: 132,
  }),
} as const)

const NAMES = Object.keys(COSE_ALGORITHMS) as CoseAlgorithm[]

export function isCoseAlgorithm(value: unknown): value is CoseAlgorithm {
  return typeof value === 'string' && Object.hasOwn(COSE_ALGORITHMS, value)
}

/** The algorithm of a protected-header alg value (-7, -35, -36), else undefined. */
export function algorithmFromId(id: unknown): CoseAlgorithm | undefined {
  return NAMES.find((name) => COSE_ALGORITHMS[name].id === id)
}

/** The algorithm of a curve, by OpenSSL (prime256v1) or JOSE (P-256) name, else undefined. */
export function algorithmFromCurve(curve: string | undefined): CoseAlgorithm | undefined {
  return NAMES.find(
    (name) => COSE_ALGORITHMS[name].curve === curve || COSE_ALGORITHMS[name].jwkCurve === curve,
  )
}

/** The algorithm a key signs with; throws CoseBadKeyError for anything but EC P-256/P-384/P-521. */
export function algorithmForKey(key: KeyObject): CoseAlgorithm {
  const curve = key.asymmetricKeyType === 'ec' ? key.asymmetricKeyDetails?.namedCurve : undefined
  const algorithm = algorithmFromCurve(curve)
  if (algorithm === undefined) {
    throw new CoseBadKeyError(
      `unsupported key: ${`${key.asymmetricKeyType ?? key.type} ${curve ?? ''}`.trim()}; ` +
        'COSE_Sign1 here uses ECDSA P-256 (ES256), P-384 (ES384) or P-521 (ES512)',
    )
  }
  return algorithm
}
