import type { ByteQueue } from './byte-queue.js'
import { BaseMessageDecoder } from './decoder.js'
import { InvalidJsonError, InvalidValueError, LineTooLongError } from './errors.js'
import {
  type JsonLinesOptions,
  type LineOptions,
  resolveJsonLinesOptions,
  resolveLineOptions,
} from './options.js'
import { decodeUtf8, encodeUtf8 } from './utf8.js'

const LF = 0x0a

function tooLong(maxLength: number, what: string): LineTooLongError {
  return new LineTooLongError(
    maxLength,
    `${what} is longer than maxLineLength (${maxLength} bytes) without a 0x0A; raise maxLineLength if the peer legitimately sends longer lines`,
  )
}

/**
 * Splits the next LF-terminated line off the queue. `scan` remembers how far a previous call
 * already searched, so a long line arriving in many chunks is scanned once.
 */
function takeLine(queue: ByteQueue, scan: { from: number }, maxLength: number, what: string) {
  const lf = queue.indexOf(LF, scan.from)
  if (lf === -1) {
    scan.from = queue.length
    // Fail as soon as the partial line is over the limit, so memory stays bounded.
    if (queue.length > maxLength) throw tooLong(maxLength, what)
    return undefined
  }
  scan.from = 0
  if (lf > maxLength) throw tooLong(maxLength, what)
  return queue.take(lf + 1).subarray(0, lf)
}

/**
 * Splits a byte stream into lines ending in 0x0A. Yields each line's bytes without the 0x0A
 * (a 0x0D before it is kept). Used for enclave-bridge's `host:port\n` tunnel request.
 */
export class LineDecoder extends BaseMessageDecoder<Buffer> {
  protected readonly what = 'line'
  readonly #maxLineLength: number
  readonly #scan = { from: 0 }

  constructor(options?: LineOptions) {
    super()
    this.#maxLineLength = resolveLineOptions(options).maxLineLength
  }

  protected next() {
    const line = takeLine(this.queue, this.#scan, this.#maxLineLength, 'a line')
    return line === undefined ? undefined : { value: line }
  }
}

/** Encodes one line: the text or bytes followed by 0x0A. They must not contain 0x0A themselves. */
export function encodeLine(line: string | Uint8Array, options?: LineOptions): Buffer {
  const { maxLineLength } = resolveLineOptions(options)
  const bytes = typeof line === 'string' ? encodeUtf8(line, 'the line') : line
  if (bytes.includes(LF)) throw new InvalidValueError('the line contains 0x0A, which would end it early')
  if (bytes.length > maxLineLength) throw tooLong(maxLineLength, 'the line')
  const out = Buffer.allocUnsafe(bytes.length + 1)
  out.set(bytes, 0)
  out[bytes.length] = LF
  return out
}

/**
 * Decodes newline-delimited JSON: each line is one JSON text (UTF-8). Yields the parsed values.
 * Blank lines are an error, as for enclave-bridge's Go reader.
 */
export class JsonLinesDecoder<T = unknown> extends BaseMessageDecoder<T> {
  protected readonly what = 'JSON line'
  readonly #maxLineLength: number
  readonly #scan = { from: 0 }

  constructor(options?: JsonLinesOptions) {
    super()
    this.#maxLineLength = resolveJsonLinesOptions(options).maxLineLength
  }

  protected next() {
    const line = takeLine(this.queue, this.#scan, this.#maxLineLength, 'a JSON line')
    if (line === undefined) return undefined
    const text = decodeUtf8(line)
    if (text === undefined) throw new InvalidJsonError('a JSON line is not valid UTF-8')
    try {
      return { value: JSON.parse(text) as T }
    } catch (error) {
      throw new InvalidJsonError(`a JSON line does not parse: ${(error as Error).message}`, { cause: error })
    }
  }
}

/** Encodes a value as one line of compact JSON followed by 0x0A. */
export function encodeJsonLine(value: unknown, options?: JsonLinesOptions): Buffer {
  const { maxLineLength } = resolveJsonLinesOptions(options)
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (error) {
    throw new InvalidJsonError(`the value cannot be serialised as JSON: ${(error as Error).message}`, {
      cause: error,
    })
  }
  if (text === undefined) {
    throw new InvalidJsonError('the value has no JSON form (undefined, a function or a symbol)')
  }
  // JSON.stringify escapes control characters and lone surrogates, so the text has no raw 0x0A.
  const out = Buffer.from(`${text}\n`, 'utf8')
  if (out.length - 1 > maxLineLength) throw tooLong(maxLineLength, 'the JSON line')
  return out
}
