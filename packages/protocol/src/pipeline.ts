import { ByteQueue } from './byte-queue.js'
import {
  BufferOverflowError,
  FrameTooLargeError,
  InvalidPaddingError,
  InvalidUtf8Error,
  InvalidValueError,
  isProtocolError,
  type ProtocolError,
  TruncatedInputError,
} from './errors.js'
import { type PipelineOptions, resolvePipelineOptions } from './options.js'
import { decodeUtf8, encodeUtf8 } from './utf8.js'

/**
 * Sentient pipeline's legacy framing: a u64 is 8 bytes little-endian plus one 0x00 pad byte
 * (9 bytes); a str is a u64 byte length then raw UTF-8. Upstream ignores the pad byte; we insist
 * it is zero, because a non-zero pad means the reader is out of step with the writer.
 */
export const PIPELINE_U64_LENGTH = 9

const MAX_U64 = 0xffff_ffff_ffff_ffffn

/** Encodes a u64 as 9 bytes: little-endian value, then 0x00. 5 → 05 00 00 00 00 00 00 00 00. */
export function encodePipelineU64(value: number | bigint): Buffer {
  if (typeof value === 'number' && (!Number.isSafeInteger(value) || value < 0)) {
    throw new InvalidValueError(`a u64 must be a non-negative safe integer or a bigint; got ${value}`)
  }
  const big = BigInt(value)
  if (big < 0n || big > MAX_U64) throw new InvalidValueError(`a u64 must be from 0 to 2^64 - 1; got ${big}`)
  const out = Buffer.alloc(PIPELINE_U64_LENGTH)
  out.writeBigUInt64LE(big, 0)
  return out
}

/** Encodes a str: its UTF-8 byte length as a pipeline u64, then the bytes. */
export function encodePipelineString(text: string, options?: PipelineOptions): Buffer {
  const { maxStringLength } = resolvePipelineOptions(options)
  const bytes = encodeUtf8(text, 'the string')
  if (bytes.length > maxStringLength) {
    throw new FrameTooLargeError(
      bytes.length,
      maxStringLength,
      `the string is ${bytes.length} bytes, more than maxStringLength (${maxStringLength})`,
    )
  }
  return Buffer.concat([encodePipelineU64(bytes.length), bytes])
}

/**
 * A pull reader for the pipeline protocol, whose message layout depends on the command id, so the
 * caller asks for each field in turn. Every read returns undefined until its bytes are there
 * (after end(), it throws TruncatedInputError instead). File contents are streamed with take().
 *
 * Memory: push() refuses to hold more than maxStringLength + 9 unread bytes; read what is
 * buffered before pushing more. Errors are sticky: the stream cannot be resynchronised.
 */
export class PipelineReader {
  readonly #queue = new ByteQueue()
  readonly #maxStringLength: number
  #ended = false
  #error: ProtocolError | undefined

  constructor(options?: PipelineOptions) {
    this.#maxStringLength = resolvePipelineOptions(options).maxStringLength
  }

  push(chunk: Uint8Array): void {
    if (this.#error) throw this.#error
    const limit = this.#maxStringLength + PIPELINE_U64_LENGTH
    if (this.#queue.length > limit) {
      throw this.#fail(
        new BufferOverflowError(
          `${this.#queue.length} unread bytes are buffered, more than maxStringLength + 9 (${limit}); read fields (or take()) before pushing more`,
        ),
      )
    }
    this.#queue.push(chunk)
  }

  /** Marks the end of input: from now on a read that lacks bytes throws TruncatedInputError. */
  end(): void {
    this.#ended = true
  }

  /** Reads a u64 as a number; throws InvalidValueError above Number.MAX_SAFE_INTEGER (use readU64BigInt). */
  readU64(): number | undefined {
    const value = this.#guard(() => this.#peekU64())
    if (value === undefined) return undefined
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      // Not sticky and nothing consumed: the caller may still read it with readU64BigInt().
      throw new InvalidValueError(`the u64 ${value} is above Number.MAX_SAFE_INTEGER; use readU64BigInt()`)
    }
    this.#queue.consume(PIPELINE_U64_LENGTH)
    return Number(value)
  }

  readU64BigInt(): bigint | undefined {
    return this.#guard(() => {
      const value = this.#peekU64()
      if (value !== undefined) this.#queue.consume(PIPELINE_U64_LENGTH)
      return value
    })
  }

  /** Reads a str; rejects a length above maxStringLength as soon as the length is read. */
  readString(): string | undefined {
    return this.#guard(() => {
      const length = this.#peekU64()
      if (length === undefined) return undefined
      const size = this.#checkSize(length, 'a string')
      if (this.#queue.length < PIPELINE_U64_LENGTH + size) return this.#needMore('a string')
      this.#queue.consume(PIPELINE_U64_LENGTH)
      const text = decodeUtf8(this.#queue.take(size))
      if (text === undefined) throw new InvalidUtf8Error('a pipeline string is not valid UTF-8')
      return text
    })
  }

  /** Reads exactly `length` raw bytes (at most maxStringLength); for larger blocks use take(). */
  readBytes(length: number | bigint): Buffer | undefined {
    if (typeof length === 'number' ? !Number.isSafeInteger(length) || length < 0 : length < 0n) {
      throw new InvalidValueError(`readBytes() takes a non-negative integer length; got ${length}`)
    }
    return this.#guard(() => {
      const size = this.#checkSize(BigInt(length), 'a block')
      if (this.#queue.length < size) return this.#needMore('a block')
      return this.#queue.take(size)
    })
  }

  /** Takes up to `maxBytes` of whatever raw bytes are buffered (possibly none): for streaming file contents. */
  take(maxBytes: number): Buffer {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new InvalidValueError(`take() takes a non-negative integer; got ${maxBytes}`)
    }
    if (this.#error) throw this.#error
    return this.#queue.take(Math.min(maxBytes, this.#queue.length))
  }

  /** The unread bytes, without consuming them. */
  remaining(): Buffer {
    return this.#queue.toBuffer()
  }

  get bufferedLength(): number {
    return this.#queue.length
  }

  #peekU64(): bigint | undefined {
    if (this.#queue.length < PIPELINE_U64_LENGTH) return this.#needMore('a u64')
    const bytes = this.#queue.peek(PIPELINE_U64_LENGTH)
    if (bytes[8] !== 0) {
      throw new InvalidPaddingError(
        `a pipeline u64's pad byte is 0x${bytes[8]!.toString(16).padStart(2, '0')}, not 0x00; the reader is out of step with the writer`,
      )
    }
    return bytes.readBigUInt64LE(0)
  }

  #checkSize(length: bigint, what: string): number {
    if (length > BigInt(this.#maxStringLength)) {
      throw new FrameTooLargeError(
        length,
        this.#maxStringLength,
        `${what} of ${length} bytes is larger than maxStringLength (${this.#maxStringLength}); raise maxStringLength if the peer is trusted, or stream it with take()`,
      )
    }
    return Number(length)
  }

  #needMore(what: string): undefined {
    if (this.#ended) {
      throw new TruncatedInputError(
        `input ended inside ${what} (${this.#queue.length} bytes left); the peer closed mid-message`,
      )
    }
    return undefined
  }

  #guard<T>(read: () => T): T {
    if (this.#error) throw this.#error
    try {
      return read()
    } catch (error) {
      if (isProtocolError(error)) throw this.#fail(error)
      throw error
    }
  }

  #fail(error: ProtocolError): ProtocolError {
    this.#error = error
    this.#queue.clear()
    return error
  }
}
