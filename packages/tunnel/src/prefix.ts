import type { Socket } from 'node:net'
import { PrefixTooLargeError, PrematureCloseError, SocketError } from './errors.js'

/** What a prefix parser returns once it has its value: the value and the bytes read past it. */
export interface PrefixResult<T> {
  value: T
  /** Bytes that arrived after the prefix; relay them first (as a resolver's `preamble`). */
  rest: Buffer
}

export interface ReadPrefixOptions {
  /** Stop waiting (rejects with the signal's reason). */
  signal?: AbortSignal
  /**
   * Fail if this many bytes arrive without the parser finishing.
   * @default 65536
   */
  maxBytes?: number
}

/**
 * Reads a prefix (such as a transparent-proxy header) off a socket. `consume` is handed each chunk
 * as it arrives, in order, and returns the result once its (incremental) decoder has a value;
 * an exception it throws (a malformed header) rejects the promise with that exception. The socket
 * is left paused, its remaining data untouched, so a relay can take over without losing a byte.
 */
export function readPrefix<T>(
  socket: Socket,
  consume: (chunk: Buffer) => PrefixResult<T> | undefined,
  { signal, maxBytes = 65_536 }: ReadPrefixOptions = {},
): Promise<PrefixResult<T>> {
  return new Promise((resolve, reject) => {
    let received = 0
    const cleanup = (): void => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      socket.off('error', onError)
      signal?.removeEventListener('abort', onAbort)
      socket.pause()
    }
    const onData = (chunk: Buffer): void => {
      received += chunk.length
      let result: PrefixResult<T> | undefined
      try {
        result = consume(chunk)
      } catch (error) {
        cleanup()
        reject(error)
        return
      }
      if (result) {
        cleanup()
        resolve(result)
      } else if (received > maxBytes) {
        cleanup()
        reject(new PrefixTooLargeError(maxBytes))
      }
    }
    const onEnd = (): void => {
      cleanup()
      reject(new PrematureCloseError(received))
    }
    const onError = (cause: Error): void => {
      cleanup()
      reject(new SocketError('inbound', { cause }))
    }
    const onAbort = (): void => {
      cleanup()
      reject(signal?.reason)
    }
    if (signal?.aborted) {
      reject(signal.reason)
      return
    }
    if (socket.destroyed || socket.readableEnded) {
      reject(new PrematureCloseError(0))
      return
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('close', onEnd)
    socket.once('error', onError)
    socket.resume()
  })
}
