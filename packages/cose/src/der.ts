/**
 * ECDSA signature encodings: COSE carries raw r‖s (IEEE P1363), while KMS, HSMs and X.509 use DER
 * (SEQUENCE { INTEGER r, INTEGER s }). Only strict DER is accepted, so one signature has one form.
 */

import { COSE_ALGORITHMS, type CoseAlgorithm, isCoseAlgorithm } from './algorithms.js'
import { CoseMalformedError, CoseUnsupportedAlgorithmError } from './errors.js'

const SEQUENCE = 0x30
const INTEGER = 0x02

function infoFor(algorithm: CoseAlgorithm) {
  if (!isCoseAlgorithm(algorithm)) {
    throw new CoseUnsupportedAlgorithmError(
      `unsupported algorithm ${String(algorithm)}; use ES256, ES384 or ES512`,
    )
  }
  return COSE_ALGORITHMS[algorithm]
}

/** Reads a DER length at `at`; returns [length, next offset]. Definite, minimal forms only. */
function readLength(der: Uint8Array, at: number): [number, number] {
  const first = der[at]
  if (first === undefined) throw new CoseMalformedError('DER signature is truncated')
  if (first < 0x80) return [first, at + 1]
  // Our largest signature (P-521) is under 256 bytes, so one length byte is all that can be valid.
  const value = der[at + 1]
  if (first !== 0x81 || value === undefined || value < 0x80) {
    throw new CoseMalformedError('DER signature has a length that is not minimal or too long')
  }
  return [value, at + 2]
}

function readInteger(der: Uint8Array, at: number, size: number, name: string): [Uint8Array, number] {
  if (der[at] !== INTEGER) throw new CoseMalformedError(`DER signature: ${name} is not an INTEGER`)
  const [length, start] = readLength(der, at + 1)
  const end = start + length
  if (length === 0 || end > der.length)
    throw new CoseMalformedError(`DER signature: ${name} is empty or truncated`)
  const bytes = der.subarray(start, end)
  if (bytes[0]! >= 0x80) throw new CoseMalformedError(`DER signature: ${name} is negative`)
  if (bytes.length > 1 && bytes[0] === 0 && bytes[1]! < 0x80) {
    throw new CoseMalformedError(`DER signature: ${name} has a non-minimal leading zero`)
  }
  const magnitude = bytes[0] === 0 ? bytes.subarray(1) : bytes
  if (magnitude.length > size) {
    throw new CoseMalformedError(`DER signature: ${name} is longer than ${size} bytes`)
  }
  const out = new Uint8Array(size)
  out.set(magnitude, size - magnitude.length)
  return [out, end]
}

/** Converts a DER ECDSA signature (what AWS KMS Sign returns) to the raw r‖s form COSE carries. */
export function derToRawSignature(der: Uint8Array, algorithm: CoseAlgorithm): Uint8Array {
  const { size } = infoFor(algorithm)
  if (!(der instanceof Uint8Array)) throw new CoseMalformedError('DER signature must be a Uint8Array')
  if (der[0] !== SEQUENCE) throw new CoseMalformedError('DER signature is not a SEQUENCE')
  const [length, body] = readLength(der, 1)
  if (body + length !== der.length) {
    throw new CoseMalformedError('DER signature length does not match its bytes (truncated or trailing data)')
  }
  const [r, afterR] = readInteger(der, body, size, 'r')
  const [s, afterS] = readInteger(der, afterR, size, 's')
  if (afterS !== der.length) throw new CoseMalformedError('DER signature has data after s')
  const raw = new Uint8Array(size * 2)
  raw.set(r, 0)
  raw.set(s, size)
  return raw
}

function derInteger(value: Uint8Array): number[] {
  let start = 0
  while (start < value.length - 1 && value[start] === 0) start++
  const bytes = Array.from(value.subarray(start))
  if (bytes[0]! >= 0x80) bytes.unshift(0)
  return [INTEGER, bytes.length, ...bytes]
}

/** Converts a raw r‖s signature of `algorithm` to DER (for verifiers that take DER only). */
export function rawToDerSignature(raw: Uint8Array, algorithm: CoseAlgorithm): Uint8Array {
  const { size, signatureLength } = infoFor(algorithm)
  if (!(raw instanceof Uint8Array) || raw.length !== signatureLength) {
    throw new CoseMalformedError(`a raw ${algorithm} signature is ${signatureLength} bytes (r‖s)`)
  }
  const body = [...derInteger(raw.subarray(0, size)), ...derInteger(raw.subarray(size))]
  const length = body.length < 0x80 ? [body.length] : [0x81, body.length]
  return Uint8Array.from([SEQUENCE, ...length, ...body])
}
