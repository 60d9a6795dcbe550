import type { Socket } from 'node:net'

export type ReadFailureReason = 'timeout' | 'closed' | 'too-long' | 'aborted' | 'socket-error'

/**
 * Why a `SocketReader` read failed. Callers translate it into their own typed error (a handshake
 * step, a tunnel header...), so it carries a reason, not a package error code.
 */
export class ReadFailure extends Error {
  readonly reason: ReadFailureReason
  constructor(reason: ReadFailureReason, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ReadFailure'
    this.reason = reason
  }
}

interface Waiter {
  check(): boolean
  fail(err: ReadFailure): void
}

export interface ReadOptions {
  /** Fail with reason 'timeout' after this many ms (0: no limit). */
  timeoutMs?: number
  signal?: AbortSignal
  /** Named in failure messages ("the settings line", ...). */
  what?: string
}

/**
 * Pulls lines and fixed-size records off a socket with bounded buffering: it stops reading once
 * `highWaterMark` bytes (or what the pending read needs) wait unread, so a peer that floods us
 * costs no memory. `release()` detaches and returns the bytes read ahead, for a relay to take over.
 */
export class SocketReader {
  readonly #socket: Socket
  readonly #highWaterMark: number
  #chunks: Buffer[] = []
  #length = 0
  #ended = false
  #error: Error | undefined
  #waiter: Waiter | undefined
  #released = false
  /** Bytes the pending read may need buffered (a long line), above the high-water mark. */
  #want = 0

  constructor(socket: Socket, { highWaterMark = 64 * 1024 }: { highWaterMark?: number } = {}) {
    this.#socket = socket
    this.#highWaterMark = highWaterMark
    // 'readable' mode (not 'data'): when the reader lets go, the socket is left neither flowing
    // nor paused, so whoever takes it next (a relay, an HTTP client) starts it as usual.
    socket.on('readable', this.#pull)
    socket.on('end', this.#onEnd)
    socket.on('close', this.#onEnd)
    socket.on('error', this.#onError)
  }

  /** Moves bytes from the socket into our buffer while the pending read may need them. */
  #pull = (): void => {
    if (this.#released) return
    while (this.#length < Math.max(this.#highWaterMark, this.#want)) {
      const chunk = this.#socket.read() as Buffer | null
      if (chunk === null) break
      this.#chunks.push(chunk)
      this.#length += chunk.length
    }
    this.#wake()
  }
  #onEnd = (): void => {
    this.#ended = true
    this.#wake()
  }
  #onError = (err: Error): void => {
    this.#error ??= err
    this.#ended = true
    this.#wake()
  }

  #wake(): void {
    const waiter = this.#waiter
    if (waiter?.check()) this.#waiter = undefined
  }

  #flatten(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks, this.#length)]
    return this.#chunks[0] ?? Buffer.alloc(0)
  }

  #take(n: number, skip = 0): Buffer {
    const all = this.#flatten()
    const out = Buffer.from(all.subarray(0, n))
    const rest = all.subarray(n + skip)
    this.#chunks = rest.length > 0 ? [rest] : []
    this.#length = rest.length
    if (!this.#released) queueMicrotask(this.#pull)
    return out
  }

  /** Bytes waiting unread. */
  get buffered(): number {
    return this.#length
  }

  #wait<T>(
    attempt: () => T | undefined,
    options: ReadOptions,
    needMore: () => string | undefined,
    want: number,
  ): Promise<T> {
    const what = options.what ?? 'the read'
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const cleanup = (): void => {
        this.#want = 0
        if (timer) clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
      }
      const waiter: Waiter = {
        check: () => {
          const tooLong = needMore()
          if (tooLong !== undefined) {
            cleanup()
            reject(new ReadFailure('too-long', `${what} is longer than ${tooLong}`))
            return true
          }
          const value = attempt()
          if (value !== undefined) {
            cleanup()
            resolve(value)
            return true
          }
          if (this.#ended) {
            cleanup()
            reject(
              this.#error
                ? new ReadFailure('socket-error', `${what} failed: ${this.#error.message}`, {
                    cause: this.#error,
                  })
                : new ReadFailure('closed', `the peer closed the connection before ${what} arrived`),
            )
            return true
          }
          return false
        },
        fail: (err) => {
          cleanup()
          reject(err)
        },
      }
      const onAbort = (): void => {
        if (this.#waiter === waiter) this.#waiter = undefined
        waiter.fail(new ReadFailure('aborted', `${what} was aborted`, { cause: options.signal?.reason }))
      }
      if (options.signal?.aborted) return onAbort()
      if (waiter.check()) return
      if (this.#waiter) throw new Error('SocketReader: one read at a time')
      this.#waiter = waiter
      this.#want = want
      this.#pull()
      options.signal?.addEventListener('abort', onAbort, { once: true })
      if (options.timeoutMs && options.timeoutMs > 0) {
        timer = setTimeout(() => {
          if (this.#waiter === waiter) this.#waiter = undefined
          waiter.fail(new ReadFailure('timeout', `${what} did not arrive within ${options.timeoutMs} ms`))
        }, options.timeoutMs)
      }
    })
  }

  /** The next line without its LF; fails once `maxBytes` arrive without a LF. */
  readLine(maxBytes: number, options: ReadOptions = {}): Promise<Buffer> {
    // Each chunk is scanned for LF once, as it arrives, and the line is joined once when its LF
    // is found: a peer dripping a long line byte by byte costs linear work, not quadratic.
    let list: Buffer[] | undefined
    let scannedChunks = 0
    let scannedBytes = 0
    let lf = -1
    const scan = (): void => {
      if (this.#chunks !== list) {
        // The buffer was rearranged (only between reads): start over on the new list.
        list = this.#chunks
        scannedChunks = 0
        scannedBytes = 0
        lf = -1
      }
      while (lf < 0 && scannedChunks < list.length) {
        const chunk = list[scannedChunks] as Buffer
        const at = chunk.indexOf(0x0a)
        if (at >= 0) lf = scannedBytes + at
        else {
          scannedBytes += chunk.length
          scannedChunks++
        }
      }
    }
    return this.#wait(
      () => {
        scan()
        return lf >= 0 ? this.#take(lf, 1) : undefined
      },
      options,
      () => {
        scan()
        const length = lf >= 0 ? lf : this.#length
        return length > maxBytes ? `${maxBytes} bytes` : undefined
      },
      maxBytes + 1,
    )
  }

  /** Exactly `n` bytes. */
  readExact(n: number, options: ReadOptions = {}): Promise<Buffer> {
    return this.#wait(
      () => (this.#length >= n ? this.#take(n) : undefined),
      options,
      () => undefined,
      n,
    )
  }

  /** The first `n` bytes without consuming them, once at least `n` are there (or the peer ends). */
  peek(n: number, options: ReadOptions = {}): Promise<Buffer> {
    return this.#wait(
      () => (this.#length >= n ? Buffer.from(this.#flatten().subarray(0, n)) : undefined),
      options,
      () => undefined,
      n,
    )
  }

  /** Whatever is buffered now (possibly nothing), without waiting. */
  peekBuffered(): Buffer {
    return Buffer.from(this.#flatten())
  }

  /** Detaches from the socket (neither flowing nor paused) and returns the bytes read ahead. Idempotent. */
  release(): Buffer {
    if (!this.#released) {
      this.#released = true
      this.#socket.off('readable', this.#pull)
      this.#socket.off('end', this.#onEnd)
      this.#socket.off('close', this.#onEnd)
      this.#socket.off('error', this.#onError)
      // Keep an error listener: a late error must not become an uncaught exception.
      if (this.#socket.listenerCount('error') === 0) this.#socket.on('error', () => {})
    }
    const rest = this.#take(this.#length)
    return rest
  }
}
