/**
 * The one place this package calls its CBOR library. Decoding is strict about structure (no
 * duplicate map keys, no undefined, one item only) but accepts what real NSMs emit: integer map
 * keys (so maps come back as Map), indefinite lengths and non-minimal integers (the timestamp is
 * always an 8-byte uint). Every library failure becomes a MalformedError.
 */

import { decode, encode, type TagDecoder } from 'cborg'
import { MalformedError } from './errors.js'

/** A CBOR tag this package recognises (COSE_Sign1 = 18), kept so callers can check where it sits. */
export class CborTagged {
  constructor(
    readonly tag: number,
    readonly value: unknown,
  ) {}
}

const tags: TagDecoder[] = []
tags[18] = (inner) => new CborTagged(18, inner())

const DECODE_OPTIONS = {
  useMaps: true,
  rejectDuplicateMapKeys: true,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  allowIndefinite: true,
  strict: false,
  tags,
} as const

/** Decodes exactly one CBOR item; trailing bytes, unknown tags and any malformation throw MalformedError. */
export function decodeCbor(bytes: Uint8Array, what: string): unknown {
  try {
    return decode(bytes, DECODE_OPTIONS)
  } catch (err) {
    // RangeError (deep nesting) and the library's own errors alike.
    const detail = err instanceof Error ? err.message.replace(/^CBOR decode error: /, '') : String(err)
    throw new MalformedError(`${what} is not valid CBOR: ${detail}`, { cause: err })
  }
}

/** Encodes a value; Maps keep their insertion order (the NSM and COSE formats are order-sensitive in practice). */
export function encodeCbor(value: unknown): Uint8Array {
  return encode(value, { mapSorter: keepOrder })
}

function keepOrder(): number {
  return 0
}
