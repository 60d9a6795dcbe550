import { BaseMessageDecoder, type DecodeResult } from './decoder.js'
import { InvalidUuidError, MalformedHeartbeatError } from './errors.js'

/**
 * enclave-bridge's watchdog record: the 16 raw bytes of the enclave id, then 0x0A. Read as a
 * fixed 17-byte record: the id itself contains 0x0A in about 5 % of random UUIDs, which breaks
 * the upstream newline-splitting reader.
 */
export const HEARTBEAT_LENGTH = 17

const UUID_TEXT = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/** The 16 bytes of a UUID in its canonical 8-4-4-4-12 hex form (either case). */
export function uuidToBytes(uuid: string): Buffer {
  if (typeof uuid !== 'string' || !UUID_TEXT.test(uuid)) {
    throw new InvalidUuidError(
      `${JSON.stringify(uuid)} is not a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`,
    )
  }
  return Buffer.from(uuid.replaceAll('-', ''), 'hex')
}

/** The canonical lower-case text of 16 UUID bytes. */
export function bytesToUuid(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new InvalidUuidError(`a UUID is 16 bytes; got ${bytes.length}`)
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Encodes one heartbeat record for an enclave id (UUID text or its 16 bytes). */
export function encodeHeartbeat(enclaveId: string | Uint8Array): Buffer {
  const id = typeof enclaveId === 'string' ? uuidToBytes(enclaveId) : enclaveId
  if (id.length !== 16) throw new InvalidUuidError(`a UUID is 16 bytes; got ${id.length}`)
  const out = Buffer.allocUnsafe(HEARTBEAT_LENGTH)
  out.set(id, 0)
  out[16] = 0x0a
  return out
}

/** Decodes one heartbeat record from the start of `bytes` into the enclave id's UUID text. */
export function decodeHeartbeat(bytes: Uint8Array): DecodeResult<string> {
  if (bytes.length < HEARTBEAT_LENGTH) return undefined
  if (bytes[16] !== 0x0a) {
    throw new MalformedHeartbeatError(
      `a heartbeat record must end with 0x0A at byte 17 but has 0x${bytes[16]!.toString(16).padStart(2, '0')}; the stream is out of step`,
    )
  }
  return { value: bytesToUuid(bytes.subarray(0, 16)), bytesRead: HEARTBEAT_LENGTH }
}

/** Decodes a stream of heartbeat records into enclave-id UUID strings. */
export class HeartbeatDecoder extends BaseMessageDecoder<string> {
  protected readonly what = 'heartbeat record'

  protected next() {
    if (this.queue.length < HEARTBEAT_LENGTH) return undefined
    const result = decodeHeartbeat(this.queue.peek(HEARTBEAT_LENGTH))
    this.queue.consume(HEARTBEAT_LENGTH)
    return result === undefined ? undefined : { value: result.value }
  }
}
