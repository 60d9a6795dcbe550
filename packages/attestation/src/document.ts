/**
 * The attestation document inside the COSE_Sign1 payload (nsm-api attestation_process.md, CDDL).
 * Parsing checks types and the CDDL limits; it does not verify anything.
 */

import { decodeCbor } from './cbor.js'
import { type CoseSign1, decodeCoseSign1 } from './cose.js'
import { MalformedError } from './errors.js'

/** A decoded attestation document. Byte fields are copies, safe to keep. */
export interface AttestationDocument {
  /** `i-<instance>-enc<enclave>` on Nitro. */
  readonly moduleId: string
  readonly digest: 'SHA384'
  /** Milliseconds since the Unix epoch, as signed by the NSM. */
  readonly timestamp: number
  /** PCR index → value (48 bytes for SHA384), in document order. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>
  /** DER of the leaf certificate that signed the document. */
  readonly certificate: Uint8Array
  /** DER certificates [root, ..., issuer of `certificate`]. */
  readonly cabundle: readonly Uint8Array[]
  readonly publicKey: Uint8Array | null
  readonly userData: Uint8Array | null
  readonly nonce: Uint8Array | null
}

export interface ParsedAttestation {
  readonly cose: CoseSign1
  readonly document: AttestationDocument
}

/** Largest accepted document: the NSM's response buffer is 12288 bytes. */
export const MAX_DOCUMENT_BYTES = 16 * 1024
const MAX_CERT_BYTES = 1024
const MAX_CABUNDLE = 16
const MAX_OPTIONAL_BYTES = 1024
const MAX_PCRS = 32

function bytesField(value: unknown, name: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array))
    throw new MalformedError(`attestation document: ${name} must be a byte string`)
  if (value.length < min || value.length > max) {
    throw new MalformedError(`attestation document: ${name} is ${value.length} bytes; allowed ${min}..${max}`)
  }
  return value
}

function optionalBytes(map: Map<unknown, unknown>, name: string): Uint8Array | null {
  const value = map.get(name)
  if (value === undefined || value === null) return null
  return bytesField(value, name, 0, MAX_OPTIONAL_BYTES)
}

/** Checks and converts a decoded payload map (as cborg gives it) into an AttestationDocument. */
export function documentFromPayload(payload: Uint8Array): AttestationDocument {
  const map = decodeCbor(payload, 'attestation document payload')
  if (!(map instanceof Map)) throw new MalformedError('attestation document payload must be a CBOR map')

  const moduleId = map.get('module_id')
  if (typeof moduleId !== 'string' || moduleId.length === 0) {
    throw new MalformedError('attestation document: module_id must be a non-empty text string')
  }
  const digest = map.get('digest')
  if (digest !== 'SHA384') {
    throw new MalformedError(
      `attestation document: digest must be "SHA384", got ${JSON.stringify(String(digest))}`,
    )
  }
  const rawTimestamp = map.get('timestamp')
  let timestamp: number
  if (typeof rawTimestamp === 'number' && Number.isSafeInteger(rawTimestamp) && rawTimestamp > 0) {
    timestamp = rawTimestamp
  } else if (
    typeof rawTimestamp === 'bigint' &&
    rawTimestamp > 0n &&
    rawTimestamp <= BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    timestamp = Number(rawTimestamp)
  } else {
    throw new MalformedError(
      'attestation document: timestamp must be a positive integer (ms since the epoch)',
    )
  }

  const rawPcrs = map.get('pcrs')
  if (!(rawPcrs instanceof Map) || rawPcrs.size < 1 || rawPcrs.size > MAX_PCRS) {
    throw new MalformedError(`attestation document: pcrs must be a map of 1..${MAX_PCRS} entries`)
  }
  const pcrs = new Map<number, Uint8Array>()
  for (const [index, value] of rawPcrs) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= MAX_PCRS) {
      throw new MalformedError(`attestation document: PCR index ${String(index)} is not an integer in 0..31`)
    }
    if (
      !(value instanceof Uint8Array) ||
      (value.length !== 32 && value.length !== 48 && value.length !== 64)
    ) {
      throw new MalformedError(
        `attestation document: PCR${index} must be a byte string of 32, 48 or 64 bytes`,
      )
    }
    pcrs.set(index, value)
  }

  const certificate = bytesField(map.get('certificate'), 'certificate', 1, MAX_CERT_BYTES)
  const rawBundle = map.get('cabundle')
  if (!Array.isArray(rawBundle) || rawBundle.length < 1 || rawBundle.length > MAX_CABUNDLE) {
    throw new MalformedError(
      `attestation document: cabundle must be an array of 1..${MAX_CABUNDLE} certificates`,
    )
  }
  const cabundle = rawBundle.map((cert, i) => bytesField(cert, `cabundle[${i}]`, 1, MAX_CERT_BYTES))

  return {
    moduleId,
    digest,
    timestamp,
    pcrs,
    certificate,
    cabundle,
    publicKey: optionalBytes(map, 'public_key'),
    userData: optionalBytes(map, 'user_data'),
    nonce: optionalBytes(map, 'nonce'),
  }
}

/** Decodes an attestation document (COSE_Sign1 + payload) without verifying it. Throws MalformedError. */
export function parseAttestationDocument(bytes: Uint8Array): ParsedAttestation {
  if (!(bytes instanceof Uint8Array)) throw new MalformedError('attestation document must be a Uint8Array')
  if (bytes.length > MAX_DOCUMENT_BYTES) {
    throw new MalformedError(
      `attestation document is ${bytes.length} bytes; at most ${MAX_DOCUMENT_BYTES} accepted`,
    )
  }
  const cose = decodeCoseSign1(bytes)
  return { cose, document: documentFromPayload(cose.payload) }
}
