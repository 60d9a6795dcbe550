import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { type Logger, silentLogger } from '@enclave/logger'
import { connect, type DevModeOptions } from '@enclave/vsock-transport'
import { createBackoff } from './backoff.js'
import { EnclaveIdMismatchError, HeartbeatTimeoutError } from './errors.js'
import { runHeartbeatChannel } from './heartbeat.js'
import { SocketReader } from './reader.js'

export type WatchdogState = 'running' | 'failed' | 'stopped'

export interface EnclaveWatchdogEvents {
  /** A valid heartbeat arrived from the host. */
  heartbeat: []
  /** No heartbeat within one interval, or a wrong id: the host is gone or is another bridge. */
  failure: [err: HeartbeatTimeoutError | EnclaveIdMismatchError]
}

export interface EnclaveWatchdogOptions {
  enclaveId: string
  intervalMs: number
  hostCid: number
  /** The handshake port (Go always dials 5000; we follow a custom handshake port). */
  port: number
  dev?: DevModeOptions | false
  logger?: Logger
}

/**
 * The enclave's half of the watchdog: keeps one connection to the host's handshake port, sends
 * our heartbeat every interval/2, and fails when the host's heartbeats stop for a whole interval.
 * A dropped connection is redialed with backoff from 100 ms up to the interval.
 */
export class EnclaveWatchdog extends EventEmitter<EnclaveWatchdogEvents> {
  #state: WatchdogState = 'running'
  #timer: NodeJS.Timeout
  #stopChannel: (() => void) | undefined
  readonly #abort = new AbortController()
  readonly #options: EnclaveWatchdogOptions
  readonly #log: Logger
  #lastBeat = Date.now()

  constructor(options: EnclaveWatchdogOptions) {
    super()
    this.#options = options
    this.#log = (options.logger ?? silentLogger).child({ component: 'bridge-watchdog' })
    this.#timer = setTimeout(
      () => this.#fail(new HeartbeatTimeoutError(options.intervalMs)),
      options.intervalMs,
    )
    void this.#loop()
  }

  get state(): WatchdogState {
    return this.#state
  }

  /** Milliseconds since the last valid heartbeat from the host (or since start). */
  get heartbeatAgeMs(): number {
    return Date.now() - this.#lastBeat
  }

  stop(): void {
    if (this.#state !== 'running') return
    this.#state = 'stopped'
    this.#shutdown()
  }

  #shutdown(): void {
    clearTimeout(this.#timer)
    this.#abort.abort()
    this.#stopChannel?.()
  }

  #fail(err: HeartbeatTimeoutError | EnclaveIdMismatchError): void {
    if (this.#state !== 'running') return
    this.#state = 'failed'
    this.#shutdown()
    this.#log.error({ err }, 'bridge watchdog failed')
    this.emit('failure', err)
  }

  async #loop(): Promise<void> {
    const { intervalMs, hostCid, port, dev, enclaveId } = this.#options
    const backoff = createBackoff({ initialMs: Math.min(100, intervalMs), maxMs: intervalMs })
    const address = `vsock://${hostCid}:${port}`
    while (this.#state === 'running') {
      let socket: Socket
      try {
        socket = await connect(address, {
          signal: this.#abort.signal,
          timeoutMs: intervalMs,
          ...(dev !== undefined ? { dev } : {}),
        })
      } catch (err) {
        if (this.#state !== 'running') return
        this.#log.debug({ err, address }, 'watchdog dial failed; retrying')
        await backoff.wait(this.#abort.signal).catch(() => {})
        continue
      }
      backoff.reset()
      const reader = new SocketReader(socket, { highWaterMark: 1024 })
      await new Promise<void>((resolve) => {
        this.#stopChannel = runHeartbeatChannel(
          socket,
          reader,
          { enclaveId, intervalMs },
          {
            onBeat: () => {
              this.#lastBeat = Date.now()
              this.#timer.refresh()
              this.emit('heartbeat')
            },
            onMismatch: (received) => {
              this.#fail(new EnclaveIdMismatchError(enclaveId, received))
              resolve()
            },
            onClose: (err) => {
              if (this.#state === 'running') this.#log.debug({ err }, 'watchdog connection closed; redialing')
              resolve()
            },
          },
        )
      })
      this.#stopChannel = undefined
      if (this.#state === 'running') await backoff.wait(this.#abort.signal).catch(() => {})
    }
  }
}
