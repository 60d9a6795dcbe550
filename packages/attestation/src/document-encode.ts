/**
 * Encodes an attestation payload byte-for-byte as the NSM does: a definite map of 9 entries in
 * the NSM's key order, the timestamp always as an 8-byte uint (0x1B), absent options as null.
 */

import { encodeCbor } from './cbor.js'

export interface PayloadFields {
  readonly moduleId: string
  readonly timestamp: number
  readonly pcrs: ReadonlyMap<number, Uint8Array>
  readonly certificate: Uint8Array
  readonly cabundle: readonly Uint8Array[]
  readonly publicKey: Uint8Array | null
  readonly userData: Uint8Array | null
  readonly nonce: Uint8Array | null
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/** `indefinite` emits 0xBF … 0xFF instead of 0xA9, as some NSM versions do (tests use it). */
export function encodeAttestationPayload(fields: PayloadFields, indefinite = false): Uint8Array {
  const timestamp = new Uint8Array(9)
  timestamp[0] = 0x1b
  new DataView(timestamp.buffer).setBigUint64(1, BigInt(fields.timestamp))
  const pcrs = new Map([...fields.pcrs.entries()].sort(([a], [b]) => a - b))
  const entries: [string, Uint8Array][] = [
    ['module_id', encodeCbor(fields.moduleId)],
    ['digest', encodeCbor('SHA384')],
    ['timestamp', timestamp],
    ['pcrs', encodeCbor(pcrs)],
    ['certificate', encodeCbor(fields.certificate)],
    ['cabundle', encodeCbor([...fields.cabundle])],
    ['public_key', encodeCbor(fields.publicKey)],
    ['user_data', encodeCbor(fields.userData)],
    ['nonce', encodeCbor(fields.nonce)],
  ]
  const parts: Uint8Array[] = [new Uint8Array([indefinite ? 0xbf : 0xa0 | entries.length])]
  for (const [key, value] of entries) parts.push(encodeCbor(key), value)
  if (indefinite) parts.push(new Uint8Array([0xff]))
  return concat(parts)
}
