import { ByteQueue } from './byte-queue.js'
import { DecoderDoneError, isProtocolError, type ProtocolError, TruncatedInputError } from './errors.js'

/** A one-shot decode: the value and how many bytes it used, or undefined when more bytes are needed. */
export type DecodeResult<T> = { value: T; bytesRead: number } | undefined

/**
 * A decoder for a stream of messages. Feed it chunks in any split; it returns each message once
 * complete. It holds at most one partial message (bounded by the codec's maximum) plus the chunk
 * being pushed.
 *
 * When a push holds good messages followed by bad bytes, the good messages are returned and the
 * error is thrown by the next push() or end(); from then on the decoder rethrows that error and
 * holds no bytes.
 */
export interface MessageDecoder<T> {
  /** Adds a chunk; returns the messages it completed (possibly none). Throws a ProtocolError on bad input. */
  push(chunk: Uint8Array): T[]
  /** Declares the end of input: throws TruncatedInputError if a message is half received. */
  end(): void
  /** The buffered bytes not yet part of a returned message (not consumed). */
  remaining(): Buffer
  /** How many bytes are buffered. */
  readonly bufferedLength: number
}

/**
 * A decoder for one message that precedes a payload (an ACK, a header). push() returns the value
 * once complete; remaining() then holds the payload bytes that arrived in the same chunks.
 */
export interface PreambleDecoder<T> {
  /** Adds a chunk; returns the value once complete, else undefined. Throws DecoderDoneError after the value. */
  push(chunk: Uint8Array): T | undefined
  /** Declares the end of input: throws TruncatedInputError if the value is not complete. */
  end(): void
  /** Bytes after the value (or, before completion, the partial value). */
  remaining(): Buffer
  readonly bufferedLength: number
  /** True once the value has been returned. */
  readonly done: boolean
}

type Step<T> = { value: T } | undefined

export abstract class BaseMessageDecoder<T> implements MessageDecoder<T> {
  protected readonly queue = new ByteQueue()
  #error: ProtocolError | undefined

  /** Decodes one message from the front of the queue, or returns undefined to wait for more bytes. */
  protected abstract next(): Step<T>
  /** Names the message kind in truncation errors. */
  protected abstract readonly what: string

  push(chunk: Uint8Array): T[] {
    if (this.#error) throw this.#error
    this.queue.push(chunk)
    const messages: T[] = []
    try {
      for (let step = this.next(); step !== undefined; step = this.next()) messages.push(step.value)
    } catch (error) {
      if (!isProtocolError(error)) throw error
      this.#fail(error)
      if (messages.length === 0) throw error
    }
    return messages
  }

  end(): void {
    if (this.#error) throw this.#error
    if (this.queue.length > 0) {
      throw this.#fail(
        new TruncatedInputError(
          `input ended inside a ${this.what} (${this.queue.length} bytes received); the peer closed mid-message`,
        ),
      )
    }
  }

  // A failed stream cannot be resynchronised: keep the error, drop the bytes.
  #fail(error: ProtocolError): ProtocolError {
    this.#error = error
    this.queue.clear()
    return error
  }

  remaining(): Buffer {
    return this.queue.toBuffer()
  }

  get bufferedLength(): number {
    return this.queue.length
  }
}

export abstract class BasePreambleDecoder<T> implements PreambleDecoder<T> {
  protected readonly queue = new ByteQueue()
  #state: 'pending' | 'done' | 'failed' = 'pending'
  #error: ProtocolError | undefined

  /** Decodes the value from the given prefix of the input. */
  protected abstract decode(bytes: Buffer): DecodeResult<T>
  /** The largest number of bytes the value can take. */
  protected abstract readonly maxLength: number
  protected abstract readonly what: string

  push(chunk: Uint8Array): T | undefined {
    if (this.#state === 'failed') throw this.#error
    if (this.#state === 'done') {
      throw new DecoderDoneError(
        `the ${this.what} was already decoded; hand remaining() and later bytes to the next stage`,
      )
    }
    this.queue.push(chunk)
    let result: DecodeResult<T>
    try {
      result = this.decode(this.queue.peek(Math.min(this.queue.length, this.maxLength)))
    } catch (error) {
      if (!isProtocolError(error)) throw error
      throw this.#fail(error)
    }
    if (result === undefined) return undefined
    this.queue.consume(result.bytesRead)
    this.#state = 'done'
    return result.value
  }

  end(): void {
    if (this.#state === 'failed') throw this.#error
    if (this.#state === 'pending') {
      throw this.#fail(
        new TruncatedInputError(
          `input ended before the ${this.what} was complete (${this.queue.length} bytes received)`,
        ),
      )
    }
  }

  #fail(error: ProtocolError): ProtocolError {
    this.#state = 'failed'
    this.#error = error
    this.queue.clear()
    return error
  }

  remaining(): Buffer {
    return this.queue.toBuffer()
  }

  get bufferedLength(): number {
    return this.queue.length
  }

  get done(): boolean {
    return this.#state === 'done'
  }
}
