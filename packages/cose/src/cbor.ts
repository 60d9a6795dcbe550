/**
 * The CBOR profile of COSE_Sign1 and the Nitro formats around it (attestation documents, NSM
 * messages, EIF signature sections), and the one place these packages call their CBOR library.
 * Decoding is strict about structure (no duplicate map keys, no undefined, one item only) but
 * accepts what real NSMs and nitro-cli emit: integer map keys (maps come back as Map), indefinite
 * lengths and non-minimal integers. Every library failure becomes a CoseMalformedError.
 */

import { decode, encode, type TagDecoder } from 'cborg'
import { CoseMalformedError } from './errors.js'

export const COSE_SIGN1_TAG = 18

/** Tag 18 decoded: kept as a wrapper so the caller can tell where it sat (only at the top is valid). */
export class Tagged {
  constructor(readonly value: unknown) {}
}

const sign1Tags: TagDecoder[] = []
sign1Tags[COSE_SIGN1_TAG] = (inner) => new Tagged(inner())

const DECODE_OPTIONS = {
  useMaps: true,
  rejectDuplicateMapKeys: true,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowIndefinite: true,
  strict: false,
} as const
const SIGN1_DECODE_OPTIONS = { ...DECODE_OPTIONS, tags: sign1Tags } as const

function decodeWith(options: typeof DECODE_OPTIONS, bytes: Uint8Array, what: string): unknown {
  try {
    return decode(bytes, options)
  } catch (err) {
    // RangeError (deep nesting) and the library's own errors alike.
    const detail = err instanceof Error ? err.message.replace(/^CBOR decode error: /, '') : String(err)
    throw new CoseMalformedError(`${what} is not valid CBOR: ${detail}`, { cause: err })
  }
}

/**
 * Decodes exactly one CBOR item (maps as Map); trailing bytes, any tag and any malformation throw
 * CoseMalformedError whose message starts with `what`.
 */
export function decodeCbor(bytes: Uint8Array, what: string): unknown {
  return decodeWith(DECODE_OPTIONS, bytes, what)
}

/** decodeCbor that also accepts tag 18, returned as Tagged. */
export function decodeCborSign1(bytes: Uint8Array, what: string): unknown {
  return decodeWith(SIGN1_DECODE_OPTIONS, bytes, what)
}

/** Encodes with Maps in insertion order: the formats built on COSE are order-sensitive in practice. */
export function encodeCbor(value: unknown): Uint8Array {
  return encode(value, { mapSorter: keepOrder })
}

function keepOrder(): number {
  return 0
}
