import { verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { decode, encode } from 'cborg'

/**
 * Untagged COSE_Sign1 (RFC 9052) with ECDSA, as aws-nitro-enclaves-cose produces for EIF
 * signatures: protected header {1: alg}, empty unprotected header, raw r‖s signature.
 * @enclave/attestation has its own COSE_Sign1 code; this copy keeps the EIF format package free of
 * a dependency on it (attestation tooling may come to depend on this package instead). Its signer
 * is asynchronous and pluggable (KMS), which attestation's key-based signCoseSign1 does not cover.
 */

export type CoseAlgorithm = 'ES256' | 'ES384' | 'ES512'

interface AlgorithmInfo {
  id: number
  hash: 'sha256' | 'sha384' | 'sha512'
  /** OpenSSL curve name, as node:crypto reports it in asymmetricKeyDetails.namedCurve. */
  curve: 'prime256v1' | 'secp384r1' | 'secp521r1'
  /** Length of the raw r‖s signature. */
  signatureLength: number
}

export const COSE_ALGORITHMS: Readonly<Record<CoseAlgorithm, AlgorithmInfo>> = Object.freeze({
  ES256: { id: -7, hash: 'sha256', curve: 'prime256v1', signatureLength: 64 },
  ES384: { id: -35, hash: 'sha384', curve: 'secp384r1', signatureLength: 96 },
  ES512: { id: -36, hash: 'sha512', curve: 'secp521r1', signatureLength: 132 },
})

export function isCoseAlgorithm(value: unknown): value is CoseAlgorithm {
  return value === 'ES256' || value === 'ES384' || value === 'ES512'
}

export function algorithmForCurve(curve: string | undefined): CoseAlgorithm | undefined {
  for (const [name, info] of Object.entries(COSE_ALGORITHMS)) {
    if (info.curve === curve) return name as CoseAlgorithm
  }
  return undefined
}

function algorithmForId(id: unknown): CoseAlgorithm | undefined {
  for (const [name, info] of Object.entries(COSE_ALGORITHMS)) {
    if (info.id === id) return name as CoseAlgorithm
  }
  return undefined
}

// Keep the caller's key order (struct field order in nitro-cli) instead of cborg's canonical sort.
const keepOrder = { mapSorter: () => 0 }

export function cborEncode(value: unknown): Uint8Array {
  return encode(value, keepOrder)
}

const tag18: unknown[] = []
tag18[18] = (ctl: { decode(): unknown }) => ctl.decode()

/** Decodes CBOR with maps as Map (COSE headers have integer keys); tag 18 (COSE_Sign1) is unwrapped. */
export function cborDecode(bytes: Uint8Array): unknown {
  return decode(bytes, { useMaps: true, tags: tag18 as never, allowUndefined: false, allowBigInt: true })
}

export function encodeProtectedHeader(algorithm: CoseAlgorithm): Uint8Array {
  return cborEncode(new Map([[1, COSE_ALGORITHMS[algorithm].id]]))
}

/** The bytes that are signed: ["Signature1", protected, h'', payload]. */
export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Buffer {
  return Buffer.from(cborEncode(['Signature1', protectedHeader, new Uint8Array(0), payload]))
}

export function encodeCoseSign1(
  protectedHeader: Uint8Array,
  payload: Uint8Array,
  signature: Uint8Array,
): Buffer {
  return Buffer.from(cborEncode([protectedHeader, new Map(), payload, signature]))
}

export interface DecodedCoseSign1 {
  protectedHeader: Uint8Array
  algorithm: CoseAlgorithm
  payload: Uint8Array
  signature: Uint8Array
}

/** Decodes a COSE_Sign1; returns a reason string when it is malformed. */
export function decodeCoseSign1(bytes: Uint8Array): DecodedCoseSign1 | string {
  let value: unknown
  try {
    value = cborDecode(bytes)
  } catch (err) {
    return `COSE_Sign1 is not valid CBOR (${(err as Error).message})`
  }
  if (!Array.isArray(value) || value.length !== 4) return 'COSE_Sign1 is not a 4-element CBOR array'
  const [protectedHeader, unprotected, payload, signature] = value as unknown[]
  if (!(protectedHeader instanceof Uint8Array)) return 'COSE_Sign1 protected header is not a byte string'
  if (!(unprotected instanceof Map)) return 'COSE_Sign1 unprotected header is not a map'
  if (!(payload instanceof Uint8Array)) return 'COSE_Sign1 payload is not a byte string'
  if (!(signature instanceof Uint8Array)) return 'COSE_Sign1 signature is not a byte string'
  let header: unknown
  try {
    header = cborDecode(protectedHeader)
  } catch (err) {
    return `COSE_Sign1 protected header is not valid CBOR (${(err as Error).message})`
  }
  if (!(header instanceof Map)) return 'COSE_Sign1 protected header is not a map'
  const algorithm = algorithmForId(header.get(1))
  if (algorithm === undefined) {
    return `COSE_Sign1 algorithm ${String(header.get(1))} is not ES256 (-7), ES384 (-35) or ES512 (-36)`
  }
  return { protectedHeader, algorithm, payload, signature }
}

/** Checks the signature with `publicKey`, which must be on the algorithm's curve. */
export function verifyCoseSign1(decoded: DecodedCoseSign1, publicKey: KeyObject): boolean {
  const info = COSE_ALGORITHMS[decoded.algorithm]
  if (publicKey.asymmetricKeyDetails?.namedCurve !== info.curve) return false
  if (decoded.signature.length !== info.signatureLength) return false
  return cryptoVerify(
    info.hash,
    sigStructure(decoded.protectedHeader, decoded.payload),
    { key: publicKey, dsaEncoding: 'ieee-p1363' },
    decoded.signature,
  )
}
