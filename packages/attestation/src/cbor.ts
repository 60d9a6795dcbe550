/**
 * CBOR for documents and NSM messages: @enclave/cose's strict profile (no duplicate map keys, no
 * undefined, one item only; integer map keys, indefinite lengths and non-minimal integers, as real
 * NSMs emit, are accepted), with its failures as this package's MalformedError.
 */

import { CoseMalformedError, decodeCbor as coseDecodeCbor } from '@enclave/cose'
import { MalformedError } from './errors.js'

export { encodeCbor } from '@enclave/cose'

/** Decodes exactly one CBOR item; trailing bytes, any tag and any malformation throw MalformedError. */
export function decodeCbor(bytes: Uint8Array, what: string): unknown {
  try {
    return coseDecodeCbor(bytes, what)
  } catch (err) {
    if (err instanceof CoseMalformedError) throw new MalformedError(err.message, { cause: err.cause })
    throw err
  }
}
