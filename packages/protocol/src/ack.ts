import { BasePreambleDecoder, type DecodeResult } from './decoder.js'
import { InvalidAckError } from './errors.js'

// enclave-bridge's ACK: ASCII ACK then LF. Sent by the enclave to open the handshake and by the
// host to finish it or to accept a client tunnel.
const ACK_FIRST = 0x06
const ACK_SECOND = 0x0a

/** The two ACK bytes 06 0A (a new Buffer each call, so callers may keep or mutate it). */
export function encodeAck(): Buffer {
  return Buffer.from([ACK_FIRST, ACK_SECOND])
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`
}

/**
 * Decodes an ACK from the start of `bytes`. Rejects a wrong first byte without waiting for the
 * second. Returns undefined while fewer than 2 bytes are available.
 */
export function decodeAck(bytes: Uint8Array): DecodeResult<true> {
  if (bytes.length >= 1 && bytes[0] !== ACK_FIRST) {
    throw new InvalidAckError(`expected the ACK 06 0A but the first byte is ${hex(bytes[0]!)}`)
  }
  if (bytes.length < 2) return undefined
  if (bytes[1] !== ACK_SECOND) {
    throw new InvalidAckError(`expected the ACK 06 0A but the second byte is ${hex(bytes[1]!)}`)
  }
  return { value: true, bytesRead: 2 }
}

/** Waits for one ACK; bytes after it stay in remaining(). */
export class AckDecoder extends BasePreambleDecoder<true> {
  protected readonly maxLength = 2
  protected readonly what = 'ACK'

  protected decode(bytes: Buffer): DecodeResult<true> {
    return decodeAck(bytes)
  }
}
