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
import { CborTagged, decodeCbor, encodeCbor } from './cbor.js'
import { CoseSignatureError, MalformedError, UnsupportedAlgorithmError } from './errors.js'

/** The COSE algorithms this package signs and verifies with. */
export type CoseAlgorithm = 'ES256' | 'ES384' | 'ES512'

interface AlgorithmParams {
  readonly id: number
  readonly hash: 'sha256' | 'sha384' | 'sha512'
  readonly curve: string
  /** Bytes of r (and of s) in the raw signature. */
  readonly size: number
}

const ALGORITHMS: Readonly<Record<CoseAlgorithm, AlgorithmParams>> = Object.freeze({
  ES256: { id: -7, hash: 'sha256', curve: 'prime256v1', size: 32 },
  ES384: { id: -35, hash: 'sha384', curve: 'secp384r1', size: 48 },
  ES512: { id: -36, hash: 'sha512', curve: 'secp521r1', size: 66 },
})

const COSE_HEADER_ALG = 1
const COSE_SIGN1_TAG = 18
const EMPTY = new Uint8Array(0)

/** A decoded COSE_Sign1. `protectedBytes` and `payload` are the bytes as received. */
export interface CoseSign1 {
  /** Whether the input carried CBOR tag 18 (real NSM output does not). */
  readonly tagged: boolean
  readonly protectedBytes: Uint8Array
  readonly protectedHeader: ReadonlyMap<unknown, unknown>
  readonly unprotectedHeader: ReadonlyMap<unknown, unknown>
  readonly payload: Uint8Array
  readonly signature: Uint8Array
  /** The protected header's alg when it is one this package knows, else undefined. */
  readonly algorithm: CoseAlgorithm | undefined
  /** The raw alg value of the protected header (undefined when absent). */
  readonly algorithmId: unknown
}

export function algorithmFromId(id: unknown): CoseAlgorithm | undefined {
  for (const [name, params] of Object.entries(ALGORITHMS) as [CoseAlgorithm, AlgorithmParams][]) {
    if (params.id === id) return name
  }
  return undefined
}

/** Decodes an untagged or tag-18 COSE_Sign1; throws MalformedError naming what is wrong. */
export function decodeCoseSign1(bytes: Uint8Array): CoseSign1 {
  if (!(bytes instanceof Uint8Array)) throw new MalformedError('COSE_Sign1 input must be a Uint8Array')
  let top = decodeCbor(bytes, 'COSE_Sign1')
  let tagged = false
  if (top instanceof CborTagged) {
    if (top.tag !== COSE_SIGN1_TAG) throw new MalformedError(`COSE_Sign1 carries tag ${top.tag}, expected 18`)
    tagged = true
    top = top.value
  }
  if (!Array.isArray(top) || top.length !== 4) {
    throw new MalformedError('COSE_Sign1 must be a CBOR array of 4 elements')
  }
  const [protectedBytes, unprotectedHeader, payload, signature] = top as unknown[]
  if (!(protectedBytes instanceof Uint8Array)) {
    throw new MalformedError('COSE_Sign1 protected header must be a byte string')
  }
  if (!(unprotectedHeader instanceof Map)) {
    throw new MalformedError('COSE_Sign1 unprotected header must be a map')
  }
  if (!(payload instanceof Uint8Array)) {
    throw new MalformedError('COSE_Sign1 payload must be a byte string (detached payloads are not supported)')
  }
  if (!(signature instanceof Uint8Array))
    throw new MalformedError('COSE_Sign1 signature must be a byte string')
  let protectedHeader: Map<unknown, unknown>
  if (protectedBytes.length === 0) {
    protectedHeader = new Map()
  } else {
    const decoded = decodeCbor(protectedBytes, 'COSE_Sign1 protected header')
    if (!(decoded instanceof Map)) throw new MalformedError('COSE_Sign1 protected header must encode a map')
    protectedHeader = decoded
  }
  const algorithmId = protectedHeader.get(COSE_HEADER_ALG)
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

/** Anything Node accepts as a key: a KeyObject, PEM text, or (for public keys) an X509Certificate. */
export type KeyInput = KeyObject | string | Buffer
export type PublicKeyInput = KeyInput | X509Certificate

function algorithmForKey(key: KeyObject): CoseAlgorithm {
  const curve = key.asymmetricKeyType === 'ec' ? key.asymmetricKeyDetails?.namedCurve : undefined
  for (const [name, params] of Object.entries(ALGORITHMS) as [CoseAlgorithm, AlgorithmParams][]) {
    if (params.curve === curve) return name
  }
  throw new UnsupportedAlgorithmError(
    `unsupported key: ${key.asymmetricKeyType ?? 'unknown'} ${curve ?? ''}`.trim() +
      '; COSE_Sign1 here uses ECDSA P-256 (ES256), P-384 (ES384) or P-521 (ES512)',
  )
}

export interface SignCoseSign1Options {
  /** Must match the key's curve; @default derived from the key (P-256 → ES256, P-384 → ES384, P-521 → ES512) */
  algorithm?: CoseAlgorithm
  /** Prefix CBOR tag 18. @default false (as the NSM and nitro-cli emit) */
  tagged?: boolean
  /** Unprotected header entries. @default empty map */
  unprotectedHeader?: ReadonlyMap<unknown, unknown>
}

/**
 * Signs `payload` into a COSE_Sign1 with protected header {1: alg} and a raw r‖s signature,
 * the shape nitro-cli uses for EIF signatures and the NSM for attestation documents.
 */
export function signCoseSign1(
  payload: Uint8Array,
  privateKey: KeyInput,
  options: SignCoseSign1Options = {},
): Uint8Array {
  const key =
    typeof privateKey === 'string' || Buffer.isBuffer(privateKey) ? createPrivateKey(privateKey) : privateKey
  if (key.type !== 'private') throw new UnsupportedAlgorithmError('signCoseSign1 needs a private key')
  const keyAlgorithm = algorithmForKey(key)
  const algorithm = options.algorithm ?? keyAlgorithm
  if (algorithm !== keyAlgorithm) {
    throw new UnsupportedAlgorithmError(`algorithm ${algorithm} does not match the key (${keyAlgorithm})`)
  }
  const params = ALGORITHMS[algorithm]
  const protectedBytes = encodeCbor(new Map([[COSE_HEADER_ALG, params.id]]))
  const signature = cryptoSign(params.hash, coseSign1SigStructure(protectedBytes, payload), {
    key,
    dsaEncoding: 'ieee-p1363',
  })
  return assemble(protectedBytes, payload, new Uint8Array(signature), options)
}

/**
 * The same COSE_Sign1 with any signer (a KMS, an HSM): `sign` gets the Sig_structure bytes and
 * returns the raw r‖s ECDSA signature over them with the algorithm's hash.
 */
export async function signCoseSign1With(
  payload: Uint8Array,
  algorithm: CoseAlgorithm,
  sign: (sigStructure: Uint8Array) => Uint8Array | Promise<Uint8Array>,
  options: Omit<SignCoseSign1Options, 'algorithm'> = {},
): Promise<Uint8Array> {
  const params = ALGORITHMS[algorithm]
  if (!params)
    throw new UnsupportedAlgorithmError(
      `unsupported algorithm ${String(algorithm)}; use ES256, ES384 or ES512`,
    )
  const protectedBytes = encodeCbor(new Map([[COSE_HEADER_ALG, params.id]]))
  const signature = await sign(coseSign1SigStructure(protectedBytes, payload))
  if (!(signature instanceof Uint8Array) || signature.length !== params.size * 2) {
    throw new UnsupportedAlgorithmError(
      `the signer must return a raw r‖s signature of ${params.size * 2} bytes for ${algorithm}`,
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
  // Tag 18 is major type 6 with the value in the initial byte: 0xC0 | 18.
  const out = new Uint8Array(encoded.length + 1)
  out[0] = 0xc0 | COSE_SIGN1_TAG
  out.set(encoded, 1)
  return out
}

function toPublicKey(input: PublicKeyInput): KeyObject {
  if (input instanceof X509Certificate) return input.publicKey
  if (typeof input === 'string' || Buffer.isBuffer(input)) return createPublicKey(input)
  return input.type === 'private' ? createPublicKey(input) : input
}

/** Checks the ECDSA signature of a decoded COSE_Sign1; false on mismatch, throws on an unusable key/alg. */
export function checkCoseSign1Signature(cose: CoseSign1, key: KeyObject): boolean {
  if (cose.algorithm === undefined) {
    throw new UnsupportedAlgorithmError(
      `unsupported COSE alg ${String(cose.algorithmId)}; expected -7, -35 or -36`,
    )
  }
  const keyAlgorithm = algorithmForKey(key)
  if (keyAlgorithm !== cose.algorithm) {
    throw new UnsupportedAlgorithmError(`COSE alg ${cose.algorithm} does not match the key (${keyAlgorithm})`)
  }
  const params = ALGORITHMS[cose.algorithm]
  if (cose.signature.length !== params.size * 2) return false
  return cryptoVerify(
    params.hash,
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
 * Decodes and verifies a COSE_Sign1 with `publicKey`; returns the decoded structure (its `payload`
 * is the signed bytes). Throws MalformedError, UnsupportedAlgorithmError or CoseSignatureError.
 */
export function verifyCoseSign1(
  input: Uint8Array | CoseSign1,
  publicKey: PublicKeyInput,
  options: VerifyCoseSign1Options = {},
): CoseSign1 {
  const cose = input instanceof Uint8Array ? decodeCoseSign1(input) : input
  const allowed = options.algorithms ?? (Object.keys(ALGORITHMS) as CoseAlgorithm[])
  if (cose.algorithm === undefined || !allowed.includes(cose.algorithm)) {
    throw new UnsupportedAlgorithmError(
      `COSE alg ${String(cose.algorithm ?? cose.algorithmId)} is not accepted here (accepted: ${allowed.join(', ')})`,
    )
  }
  if (!checkCoseSign1Signature(cose, toPublicKey(publicKey))) throw new CoseSignatureError()
  return cose
}
