import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect, type DevModeOptions } from '@enclave/vsock-transport'
import { StatusInvalidError } from './errors.js'
import { type EnclaveStatus, isFinal, StatusDecoder } from './status.js'

export interface HostConnectOptions {
  readonly dev?: DevModeOptions | false
  readonly signal?: AbortSignal
  /** Pause between connection attempts, ms. @default 250 */
  readonly retryIntervalMs?: number
  /** Give up after this many attempts (Infinity: until aborted). @default 100 (enclaver's) */
  readonly attempts?: number
}

/** Connects to `address`, retrying while the enclave boots; rejects with the last error. */
export async function connectWithRetry(address: string, options: HostConnectOptions = {}): Promise<Socket> {
  const attempts = options.attempts ?? 100
  const interval = options.retryIntervalMs ?? 250
  let last: unknown
  for (let i = 0; i < attempts; i++) {
    options.signal?.throwIfAborted()
    try {
      return await connect(address, { dev: options.dev, signal: options.signal, timeoutMs: 5000 })
    } catch (err) {
      last = err
      if (options.signal?.aborted) throw err
    }
    await sleep(interval, undefined, { signal: options.signal })
  }
  throw last
}

/**
 * Follows the status channel until a final status (exited, signaled, fatal), calling `onStatus`
 * for each one. Every status odyn sends parses here, including `signaled` with a name.
 */
export async function watchStatus(
  address: string,
  options: HostConnectOptions & {
    onStatus?: (status: EnclaveStatus) => void
    /** A line that is not a status: skipped (reported here) instead of ending the watch. */
    onInvalid?: (error: StatusInvalidError, line: string) => void
  } = {},
): Promise<EnclaveStatus> {
  const socket = await connectWithRetry(address, options)
  const decoder = new StatusDecoder({ onInvalid: options.onInvalid ?? (() => {}) })
  let onAbort: (() => void) | undefined
  try {
    return await new Promise<EnclaveStatus>((resolve, reject) => {
      onAbort = () => reject(options.signal?.reason ?? new Error('aborted'))
      options.signal?.addEventListener('abort', onAbort, { once: true })
      socket.on('data', (chunk: Buffer) => {
        for (const status of decoder.push(chunk)) {
          options.onStatus?.(status)
          if (isFinal(status)) resolve(status)
        }
      })
      socket.once('error', reject)
      socket.once('close', () =>
        reject(new StatusInvalidError(`the status channel ${address} closed before a final status`)),
      )
    })
  } finally {
    if (onAbort) options.signal?.removeEventListener('abort', onAbort)
    socket.destroy()
  }
}

export interface LogStream {
  /** Resolves when the log channel ends (or was closed). */
  readonly done: Promise<void>
  close(): void
}

/**
 * Copies the log channel to `sink` (the ring is replayed first, then live lines), retrying the
 * connection until it succeeds or `signal` aborts, as enclaver-run does.
 */
export function streamLogs(
  address: string,
  sink: NodeJS.WritableStream,
  options: HostConnectOptions = {},
): LogStream {
  let socket: Socket | undefined
  let closed = false
  const done = (async () => {
    try {
      socket = await connectWithRetry(address, { attempts: Number.POSITIVE_INFINITY, ...options })
    } catch {
      return
    }
    if (closed) {
      socket.destroy()
      return
    }
    const s = socket
    await new Promise<void>((resolve) => {
      s.on('data', (chunk: Buffer) => {
        if (!sink.write(chunk)) {
          s.pause()
          sink.once('drain', () => s.resume())
        }
      })
      s.once('close', () => resolve())
      s.once('error', () => resolve())
    })
  })()
  return {
    done,
    close() {
      closed = true
      socket?.destroy()
    },
  }
}
