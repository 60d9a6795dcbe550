import { InvalidValueError } from './errors.js'

/**
 * A FIFO of received chunks. Bytes are copied only when a message spans chunks, so a large frame
 * arriving in many small chunks is assembled once instead of re-concatenated on every push.
 */
export class ByteQueue {
  #chunks: Buffer[] = []
  #head = 0 // bytes of #chunks[0] already consumed
  #length = 0

  get length(): number {
    return this.#length
  }

  push(chunk: Uint8Array): void {
    if (!(chunk instanceof Uint8Array)) {
      throw new InvalidValueError(
        `push() takes a Buffer or Uint8Array; got ${typeof chunk} (was setEncoding() called on the socket?)`,
      )
    }
    if (chunk.byteLength === 0) return
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    this.#length += chunk.byteLength
  }

  /** Position of the first `byte` at or after `from`, or -1. */
  indexOf(byte: number, from = 0): number {
    let base = 0 // queue offset of the current chunk's first unconsumed byte
    for (let c = 0; c < this.#chunks.length; c++) {
      const chunk = this.#chunks[c]!
      const start = c === 0 ? this.#head : 0
      const size = chunk.length - start
      if (from < base + size) {
        const found = chunk.indexOf(byte, start + Math.max(0, from - base))
        if (found !== -1) return base + found - start
      }
      base += size
    }
    return -1
  }

  /** The first n bytes as one Buffer (a view when they lie in one chunk). Requires n <= length. */
  peek(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`peek(${n}) past the end of ${this.#length} queued bytes`)
    const first = this.#chunks[0]
    if (n === 0 || first === undefined) return Buffer.alloc(0)
    if (first.length - this.#head >= n) return first.subarray(this.#head, this.#head + n)
    // Copy exactly the n bytes into one Buffer (so later peeks of them are free); the rest of the
    // last chunk they touch stays a view. Allocation is thus bounded by the message, not the chunk.
    let covered = first.length - this.#head
    let count = 1
    while (covered < n) covered += this.#chunks[count++]!.length
    const merged = Buffer.concat([first.subarray(this.#head), ...this.#chunks.slice(1, count)], n)
    const last = this.#chunks[count - 1]!
    const tail = last.subarray(last.length - (covered - n))
    this.#chunks.splice(0, count, ...(tail.length > 0 ? [merged, tail] : [merged]))
    this.#head = 0
    return merged
  }

  consume(n: number): void {
    if (n > this.#length) throw new RangeError(`consume(${n}) past the end of ${this.#length} queued bytes`)
    this.#length -= n
    while (n > 0) {
      const first = this.#chunks[0]!
      const available = first.length - this.#head
      if (n < available) {
        this.#head += n
        return
      }
      n -= available
      this.#chunks.shift()
      this.#head = 0
    }
  }

  clear(): void {
    this.#chunks = []
    this.#head = 0
    this.#length = 0
  }

  take(n: number): Buffer {
    const bytes = this.peek(n)
    this.consume(n)
    return bytes
  }

  /** Everything queued, as one Buffer, without consuming it. */
  toBuffer(): Buffer {
    return this.peek(this.#length)
  }
}
