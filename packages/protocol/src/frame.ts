import { BaseMessageDecoder, type DecodeResult } from './decoder.js'
import { FrameTooLargeError } from './errors.js'
import { type FrameOptions, resolveFrameOptions } from './options.js'

const PREFIX = 4

function tooLarge(length: number, maxFrameLength: number, what: string): FrameTooLargeError {
  return new FrameTooLargeError(
    length,
    maxFrameLength,
    `${what} of ${length} bytes is larger than maxFrameLength (${maxFrameLength}); raise maxFrameLength if the peer legitimately sends larger frames`,
  )
}

/** Encodes a frame: the payload length as a u32 big-endian, then the payload. */
export function encodeFrame(payload: Uint8Array, options?: FrameOptions): Buffer {
  const { maxFrameLength } = resolveFrameOptions(options)
  if (payload.length > maxFrameLength) throw tooLarge(payload.length, maxFrameLength, 'a payload')
  const out = Buffer.allocUnsafe(PREFIX + payload.length)
  out.writeUInt32BE(payload.length, 0)
  out.set(payload, PREFIX)
  return out
}

function decodeWith(bytes: Uint8Array, maxFrameLength: number): DecodeResult<Buffer> {
  if (bytes.length < PREFIX) return undefined
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const length = view.readUInt32BE(0)
  // Checked before waiting for (or allocating) the payload.
  if (length > maxFrameLength) throw tooLarge(length, maxFrameLength, 'a frame')
  if (bytes.length < PREFIX + length) return undefined
  return { value: view.subarray(PREFIX, PREFIX + length), bytesRead: PREFIX + length }
}

/**
 * Decodes one frame from the start of `bytes`; the payload is a view into `bytes`. Throws
 * FrameTooLargeError as soon as the 4-byte prefix announces more than maxFrameLength.
 */
export function decodeFrame(bytes: Uint8Array, options?: FrameOptions): DecodeResult<Buffer> {
  return decodeWith(bytes, resolveFrameOptions(options).maxFrameLength)
}

/**
 * Decodes a stream of u32-big-endian length-prefixed frames into their payloads. Payloads may
 * share memory with the pushed chunks; copy one before mutating it or keeping it long.
 */
export class FrameDecoder extends BaseMessageDecoder<Buffer> {
  protected readonly what = 'frame'
  readonly #maxFrameLength: number

  constructor(options?: FrameOptions) {
    super()
    this.#maxFrameLength = resolveFrameOptions(options).maxFrameLength
  }

  protected next() {
    if (this.queue.length < PREFIX) return undefined
    const length = this.queue.peek(PREFIX).readUInt32BE(0)
    if (length > this.#maxFrameLength) throw tooLarge(length, this.#maxFrameLength, 'a frame')
    if (this.queue.length < PREFIX + length) return undefined
    return { value: this.queue.take(PREFIX + length).subarray(PREFIX) }
  }
}
