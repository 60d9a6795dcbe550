/**
 * COSE_Sign1 (RFC 9052 section 4.2) with ECDSA: decode, sign and verify. The signature is checked
 * over a Sig_structure built from the protected-header and payload bytes exactly as they were
 * received, never from a re-encoding of decoded values.
 */

import {
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
  X509Certificate,
} from 'node:crypto'
import {
  algorithmForKey,
  algorithmFromId,
  COSE_ALGORITHMS,
  type CoseAlgorithm,
  isCoseAlgorithm,
} from './algorithms.js'
import { COSE_SIGN1_TAG, decodeCbor, decodeCborSign1, encodeCbor, Tagged } from './cbor.js'
import {
  CoseBadKeyError,
  CoseBadSignatureError,
  CoseBadSignerOutputError,
  CoseInvalidOptionError,
  CoseMalformedError,
  CoseSignerFailedError,
  CoseUnsupportedAlgorithmError,
} from './errors.js'

const HEADER_ALG = 1
const EMPTY = new Uint8Array(0)

/** A decoded COSE_Sign1. `protectedBytes` and `payload` are the bytes as received. */
export interface CoseSign1 {
  /** Whether the input carried CBOR tag 18 (NSM and nitro-cli output does not). */
  readonly tagged: boolean
  readonly protectedBytes: Uint8Array
  readonly protectedHeader: ReadonlyMap<unknown, unknown>
  readonly unprotectedHeader: ReadonlyMap<unknown, unknown>
  readonly payload: Uint8Array
  readonly signature: Uint8Array
  /** The protected header's alg when it is ES256/ES384/ES512, else undefined. */
  readonly algorithm: CoseAlgorithm | undefined
  /** The raw alg value of the protected header (undefined when absent). */
  readonly algorithmId: unknown
}

/** Decodes an untagged or tag-18 COSE_Sign1; throws CoseMalformedError naming what is wrong. */
export function decodeCoseSign1(bytes: Uint8Array): CoseSign1 {
  if (!(bytes instanceof Uint8Array)) throw new CoseMalformedError('COSE_Sign1 input must be a Uint8Array')
  let top = decodeCborSign1(bytes, 'COSE_Sign1')
  const tagged = top instanceof Tagged
  if (top instanceof Tagged) top = top.value
  if (!Array.isArray(top) || top.length !== 4) {
    throw new CoseMalformedError('COSE_Sign1 must be a CBOR array of 4 elements')
  }
  const [protectedBytes, unprotectedHeader, payload, signature] = top as unknown[]
  if (!(protectedBytes instanceof Uint8Array)) {
    throw new CoseMalformedError('COSE_Sign1 protected header must be a byte string')
  }
  if (!(unprotectedHeader instanceof Map)) {
    throw new CoseMalformedError('COSE_Sign1 unprotected header must be a map')
  }
  if (!(payload instanceof Uint8Array)) {
    throw new CoseMalformedError(
      'COSE_Sign1 payload must be a byte string (detached payloads are not supported)',
    )
  }
  if (!(signature instanceof Uint8Array)) {
    throw new CoseMalformedError('COSE_Sign1 signature must be a byte string')
  }
  const protectedHeader =
    protectedBytes.length === 0 ? new Map() : decodeCbor(protectedBytes, 'COSE_Sign1 protected header')
  if (!(protectedHeader instanceof Map)) {
    throw new CoseMalformedError('COSE_Sign1 protected header must encode a map')
  }
  const algorithmId = protectedHeader.get(HEADER_ALG)
  return {
    tagged,
    protectedBytes,
    protectedHeader,
    unprotectedHeader,
    payload,
    signature,
    algorithm: algorithmFromId(algorithmId),
    algorithmId,
  }
}

/** The bytes that are signed: CBOR ["Signature1", protected, external_aad, payload]. */
export function coseSign1SigStructure(
  protectedBytes: Uint8Array,
  payload: Uint8Array,
  externalAad: Uint8Array = EMPTY,
): Uint8Array {
  return encodeCbor(['Signature1', protectedBytes, externalAad, payload])
}

/** Anything Node accepts as a key: a KeyObject or PEM/DER-in-PEM text. */
export type KeyInput = KeyObject | string | Buffer
/** A public key, a private key (its public half is used) or a certificate. */
export type PublicKeyInput = KeyInput | X509Certificate

export interface SignCoseSign1Options {
  /** Must match the key's curve. @default derived from the key (P-256 → ES256, P-384 → ES384, P-521 → ES512) */
  algorithm?: CoseAlgorithm
  /** Prefix CBOR tag 18. @default false (as the NSM and nitro-cli emit) */
  tagged?: boolean
  /** Unprotected header entries. @default empty map */
  unprotectedHeader?: ReadonlyMap<unknown, unknown>
}

/** A raw r‖s (IEEE P1363) ECDSA signature over `toBeSigned`, hashed with the algorithm's hash. */
export type CoseSigner = (toBeSigned: Uint8Array) => Uint8Array | Promise<Uint8Array>

function checkPayload(payload: unknown): asserts payload is Uint8Array {
  if (!(payload instanceof Uint8Array))
    throw new CoseInvalidOptionError('the COSE_Sign1 payload must be a Uint8Array')
}

function toPrivateKey(input: KeyInput): KeyObject {
  let key: KeyObject
  try {
    key = typeof input === 'string' || Buffer.isBuffer(input) ? createPrivateKey(input) : input
  } catch (cause) {
    throw new CoseBadKeyError('the signing key does not parse; give a PEM EC private key (PKCS#8 or SEC1)', {
      cause,
    })
  }
  if (key?.type !== 'private') throw new CoseBadKeyError('signing a COSE_Sign1 needs a private key')
  return key
}

function protectedBytesFor(algorithm: CoseAlgorithm): Uint8Array {
  return encodeCbor(new Map([[HEADER_ALG, COSE_ALGORITHMS[algorithm].id]]))
}

/**
 * Signs `payload` into a COSE_Sign1 with protected header {1: alg} and a raw r‖s signature, the
 * shape nitro-cli uses for EIF signatures and the NSM for attestation documents.
 */
export function signCoseSign1(
  payload: Uint8Array,
  privateKey: KeyInput,
  options: SignCoseSign1Options = {},
): Uint8Array {
  checkPayload(payload)
  const key = toPrivateKey(privateKey)
  const keyAlgorithm = algorithmForKey(key)
  const algorithm = options.algorithm ?? keyAlgorithm
  if (algorithm !== keyAlgorithm) {
    throw new CoseBadKeyError(`algorithm ${String(algorithm)} does not match the key (${keyAlgorithm})`)
  }
  const protectedBytes = protectedBytesFor(algorithm)
  const signature = cryptoSign(
    COSE_ALGORITHMS[algorithm].hash,
    coseSign1SigStructure(protectedBytes, payload),
    {
      key,
      dsaEncoding: 'ieee-p1363',
    },
  )
  return assemble(protectedBytes, payload, new Uint8Array(signature), options)
}

/**
 * The same COSE_Sign1 with any signer (a KMS, an HSM): `sign` gets the Sig_structure bytes and
 * returns the raw r‖s ECDSA signature over them (derToRawSignature converts a DER one).
 */
export async function signCoseSign1With(
  payload: Uint8Array,
  algorithm: CoseAlgorithm,
  sign: CoseSigner,
  options: Omit<SignCoseSign1Options, 'algorithm'> = {},
): Promise<Uint8Array> {
  checkPayload(payload)
  if (!isCoseAlgorithm(algorithm)) {
    throw new CoseUnsupportedAlgorithmError(
      `unsupported algorithm ${String(algorithm)}; use ES256, ES384 or ES512`,
    )
  }
  if (typeof sign !== 'function')
    throw new CoseInvalidOptionError('sign must be a function (toBeSigned) => signature')
  const protectedBytes = protectedBytesFor(algorithm)
  let signature: unknown
  try {
    signature = await sign(coseSign1SigStructure(protectedBytes, payload))
  } catch (cause) {
    throw new CoseSignerFailedError(`the ${algorithm} signer failed`, { cause })
  }
  const expected = COSE_ALGORITHMS[algorithm].signatureLength
  if (!(signature instanceof Uint8Array) || signature.length !== expected) {
    const got = signature instanceof Uint8Array ? `${signature.length} bytes` : typeof signature
    throw new CoseBadSignerOutputError(
      `the signer returned ${got}; ${algorithm} needs a ${expected}-byte raw r‖s signature (IEEE P1363, not DER)`,
    )
  }
  return assemble(protectedBytes, payload, signature, options)
}

function assemble(
  protectedBytes: Uint8Array,
  payload: Uint8Array,
  signature: Uint8Array,
  options: Omit<SignCoseSign1Options, 'algorithm'>,
): Uint8Array {
  const body = [protectedBytes, new Map(options.unprotectedHeader ?? []), payload, signature]
  const encoded = encodeCbor(body)
  if (!options.tagged) return encoded
  // Tag 18 is major type 6 with the value in the initial byte.
  const out = new Uint8Array(encoded.length + 1)
  out[0] = 0xc0 | COSE_SIGN1_TAG
  out.set(encoded, 1)
  return out
}

function toPublicKey(input: PublicKeyInput): KeyObject {
  try {
    if (input instanceof X509Certificate) return input.publicKey
    if (typeof input === 'string' || Buffer.isBuffer(input)) return createPublicKey(input)
    return input.type === 'private' ? createPublicKey(input) : input
  } catch (cause) {
    throw new CoseBadKeyError('the verification key does not parse; give a PEM public key or a certificate', {
      cause,
    })
  }
}

/**
 * Checks the ECDSA signature of a decoded COSE_Sign1: false on mismatch. Throws
 * CoseUnsupportedAlgorithmError for an unknown alg and CoseBadKeyError for a key of another curve.
 */
export function checkCoseSign1Signature(cose: CoseSign1, key: KeyObject): boolean {
  if (cose.algorithm === undefined) {
    throw new CoseUnsupportedAlgorithmError(
      `unsupported COSE alg ${String(cose.algorithmId)}; expected -7 (ES256), -35 (ES384) or -36 (ES512)`,
    )
  }
  const keyAlgorithm = algorithmForKey(key)
  if (keyAlgorithm !== cose.algorithm) {
    throw new CoseBadKeyError(`COSE alg ${cose.algorithm} does not match the key (${keyAlgorithm})`)
  }
  const info = COSE_ALGORITHMS[cose.algorithm]
  if (cose.signature.length !== info.signatureLength) return false
  return cryptoVerify(
    info.hash,
    coseSign1SigStructure(cose.protectedBytes, cose.payload),
    { key, dsaEncoding: 'ieee-p1363' },
    cose.signature,
  )
}

export interface VerifyCoseSign1Options {
  /** Algorithms accepted. @default ['ES256', 'ES384', 'ES512'] */
  algorithms?: readonly CoseAlgorithm[]
}

/**
 * Decodes (when given bytes) and verifies a COSE_Sign1; returns the decoded structure, whose
 * `payload` is the signed bytes. Throws CoseMalformedError, CoseUnsupportedAlgorithmError,
 * CoseBadKeyError or CoseBadSignatureError.
 */
export function verifyCoseSign1(
  input: Uint8Array | CoseSign1,
  publicKey: PublicKeyInput,
  options: VerifyCoseSign1Options = {},
): CoseSign1 {
  const cose = input instanceof Uint8Array ? decodeCoseSign1(input) : input
  const allowed = options.algorithms ?? (Object.keys(COSE_ALGORITHMS) as CoseAlgorithm[])
  if (cose.algorithm === undefined || !allowed.includes(cose.algorithm)) {
    throw new CoseUnsupportedAlgorithmError(
      `COSE alg ${String(cose.algorithm ?? cose.algorithmId)} is not accepted here (accepted: ${allowed.join(', ')})`,
    )
  }
  if (!checkCoseSign1Signature(cose, toPublicKey(publicKey))) throw new CoseBadSignatureError()
  return cose
}
