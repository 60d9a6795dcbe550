import fc from 'fast-check'
import { isProtocolError, type MessageDecoder, type PreambleDecoder } from '../src/index.js'

/** Cuts `bytes` at the given points (taken modulo length + 1, so empty chunks happen too). */
export function splitAt(bytes: Uint8Array, points: readonly number[]): Buffer[] {
  const cuts = points.map((p) => p % (bytes.length + 1)).sort((a, b) => a - b)
  const chunks: Buffer[] = []
  let start = 0
  for (const cut of cuts) {
    chunks.push(Buffer.from(bytes.subarray(start, cut)))
    start = cut
  }
  chunks.push(Buffer.from(bytes.subarray(start)))
  return chunks
}

export const splitPoints = fc.array(fc.nat(), { maxLength: 24 })

export interface StreamOutcome<T> {
  messages: T[]
  /** Code of the first error, if any. */
  error: string | undefined
  /** Largest bufferedLength seen minus the chunk just pushed (what was held besides it). */
  maxHeldBesideChunk: number
}

/**
 * Feeds chunks to a fresh decoder, then end(); records messages and the first error. Rethrows any
 * error that is not a ProtocolError, which fails the property.
 */
export function runStream<T>(decoder: MessageDecoder<T>, chunks: readonly Uint8Array[]): StreamOutcome<T> {
  const messages: T[] = []
  let maxHeldBesideChunk = 0
  const record = (chunk: Uint8Array) => {
    maxHeldBesideChunk = Math.max(maxHeldBesideChunk, decoder.bufferedLength - chunk.length)
  }
  try {
    for (const chunk of chunks) {
      try {
        messages.push(...decoder.push(chunk))
      } finally {
        record(chunk)
      }
    }
    decoder.end()
    return { messages, error: undefined, maxHeldBesideChunk }
  } catch (error) {
    if (!isProtocolError(error)) throw error
    return { messages, error: error.code, maxHeldBesideChunk }
  }
}

export interface PreambleOutcome<T> {
  value: T | undefined
  /** Every byte after the value: remaining() plus the chunks not pushed. */
  payload: Buffer
  error: string | undefined
}

/** Pushes chunks until the value is decoded; the rest of the input is payload. */
export function runPreamble<T>(
  decoder: PreambleDecoder<T>,
  chunks: readonly Uint8Array[],
): PreambleOutcome<T> {
  try {
    for (let i = 0; i < chunks.length; i++) {
      const value = decoder.push(chunks[i]!)
      if (value !== undefined) {
        return {
          value,
          payload: Buffer.concat([decoder.remaining(), ...chunks.slice(i + 1)]),
          error: undefined,
        }
      }
    }
    decoder.end()
    throw new Error('end() accepted an incomplete preamble')
  } catch (error) {
    if (!isProtocolError(error)) throw error
    return { value: undefined, payload: Buffer.alloc(0), error: error.code }
  }
}
