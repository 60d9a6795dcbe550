import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { connect, type DevModeOptions } from '@enclave/vsock-transport'
import { type Logger as PinoLogger, pino } from 'pino'
import { createBackoff } from './backoff.js'
import { BRIDGE_HOST_CID, BRIDGE_LOG_PORT } from './constants.js'

/** Options of `createLogDestination`. */
export interface LogDestinationOptions {
  /** @default 3 */
  hostCid?: number
  /** @default 4999 */
  port?: number
  /**
   * Bytes of log lines kept while the host is unreachable or slow; beyond it the oldest lines are
   * dropped (and counted), so logging never blocks or grows the enclave's memory without bound.
   * @default 1048576
   */
  maxBufferBytes?: number
  dev?: DevModeOptions | false
}

export type LogDestinationState = 'connecting' | 'connected' | 'closing' | 'closed'

/**
 * A pino destination that sends each log line to the bridge host's log port, whole lines only
 * (the host never splits or interleaves them). Reconnects with backoff; buffers boundedly.
 */
export class BridgeLogDestination extends EventEmitter<{ connected: []; disconnected: [] }> {
  #state: LogDestinationState = 'connecting'
  #socket: Socket | undefined
  #queue: string[] = []
  #queued = 0
  #dropped = 0
  readonly #max: number
  readonly #abort = new AbortController()
  readonly #options: LogDestinationOptions

  constructor(options: LogDestinationOptions = {}) {
    super()
    this.#options = options
    this.#max = options.maxBufferBytes ?? 1024 * 1024
    void this.#connectLoop()
  }

  get state(): LogDestinationState {
    return this.#state
  }

  /** Lines dropped so far because the buffer was full. */
  get dropped(): number {
    return this.#dropped
  }

  write(line: string): boolean {
    if (this.#state === 'closed') return false
    const text = line.endsWith('\n') ? line : `${line}\n`
    const socket = this.#socket
    if (socket && this.#queue.length === 0 && socket.writableLength < this.#max) {
      socket.write(text)
      return true
    }
    this.#enqueue(text)
    return true
  }

  #enqueue(text: string): void {
    this.#queue.push(text)
    this.#queued += text.length
    while (this.#queued > this.#max && this.#queue.length > 0) {
      this.#queued -= (this.#queue.shift() as string).length
      this.#dropped++
    }
  }

  #flush = (): void => {
    const socket = this.#socket
    if (!socket) return
    if (this.#dropped > 0) {
      // Say so in the stream itself, where the gap is (before the oldest line kept).
      socket.write(
        `${JSON.stringify({ level: 40, time: Date.now(), msg: `bridge log buffer full: ${this.#dropped} lines dropped` })}\n`,
      )
      this.#dropped = 0
    }
    while (this.#queue.length > 0 && socket.writableLength < this.#max) {
      const text = this.#queue.shift() as string
      this.#queued -= text.length
      socket.write(text)
    }
  }

  async #connectLoop(): Promise<void> {
    const backoff = createBackoff({ initialMs: 10, maxMs: 5000 })
    const o = this.#options
    while (this.#state === 'connecting') {
      try {
        const socket = await connect(`vsock://${o.hostCid ?? BRIDGE_HOST_CID}:${o.port ?? BRIDGE_LOG_PORT}`, {
          signal: this.#abort.signal,
          timeoutMs: 10_000,
          ...(o.dev !== undefined ? { dev: o.dev } : {}),
        })
        if (this.#state !== 'connecting') {
          socket.destroy()
          return
        }
        backoff.reset()
        this.#socket = socket
        this.#state = 'connected'
        socket.on('error', () => {})
        socket.on('drain', this.#flush)
        // The host never writes to us; read and discard so a FIN is noticed.
        socket.resume()
        socket.once('close', () => {
          this.#socket = undefined
          if (this.#state === 'connected') {
            this.#state = 'connecting'
            this.emit('disconnected')
            void this.#connectLoop()
          }
        })
        this.#flush()
        this.emit('connected')
        return
      } catch {
        if (this.#state !== 'connecting') return
        await backoff.wait(this.#abort.signal).catch(() => {})
      }
    }
  }

  /** Sends what is queued (waiting at most `timeoutMs`), then closes. */
  async close({ timeoutMs = 2000 }: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return
    const socket = this.#socket
    this.#state = 'closing'
    this.#abort.abort()
    if (socket) {
      this.#flush()
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          socket.destroy()
          resolve()
        }, timeoutMs)
        socket.end(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    this.#state = 'closed'
  }
}

export function createLogDestination(options: LogDestinationOptions = {}): BridgeLogDestination {
  return new BridgeLogDestination(options)
}

/**
 * A pino logger for an enclave app whose JSON lines go to the bridge host's stdout. Records carry
 * `app` (like the Go library's zerolog logger) and an ISO time.
 */
export function createBridgeLogger(
  { appName, level = 'info' }: { appName: string; level?: string },
  destination: BridgeLogDestination,
): PinoLogger {
  return pino({ level, base: { app: appName }, timestamp: pino.stdTimeFunctions.isoTime }, destination)
}
