import type { Socket } from 'node:net'
import { type Logger, silentLogger } from '@enclave/logger'
import { encodeAck } from '@enclave/protocol'
import { connect, type DevModeOptions } from '@enclave/vsock-transport'
import { createBackoff } from './backoff.js'
import {
  BRIDGE_HOST_CID,
  BRIDGE_INIT_PORT,
  BRIDGE_LOG_PORT,
  HANDSHAKE_STEP_TIMEOUT_MS,
  MAX_HANDSHAKE_LINE_BYTES,
} from './constants.js'
import { AbortedError, HandshakeFailedError, InvalidOptionError, MissingAckError } from './errors.js'
import { ReadFailure, SocketReader } from './reader.js'
import { type BridgeSettings, settingsToJson } from './settings.js'
import { EnclaveWatchdog } from './watchdog.js'

/** The handshake's ACK bytes, 06 0A. */
export const ACK: Buffer = encodeAck()

/** Options of `connectBridge`. */
export interface ConnectBridgeOptions {
  /**
   * CID of the bridge host.
   * @default 3 (the parent instance)
   */
  hostCid?: number
  /**
   * vsock port of the handshake (and of the watchdog).
   * @default 5000
   */
  port?: number
  /**
   * vsock port the host takes logs on (used by `session.logDestination`).
   * @default 4999
   */
  logPort?: number
  /**
   * Each step (dial, environment line, final ACK) must complete within this, in ms.
   * @default 10000
   */
  stepTimeoutMs?: number
  /**
   * Retry delays for reaching the host, in ms. Retries never stop unless `signal` aborts or
   * `maxAttempts` is reached.
   * @default { initialMs: 10, maxMs: 5000 }
   */
  backoff?: { initialMs: number; maxMs: number }
  /** @default Infinity */
  maxAttempts?: number
  signal?: AbortSignal
  logger?: Logger
  /** vsock-transport dev mode (vsock over Unix sockets); default: from ENCLAVE_VSOCK_DEV_DIR. */
  dev?: DevModeOptions | false
}

interface Resolved {
  hostCid: number
  port: number
  logPort: number
  stepTimeoutMs: number
  backoff: { initialMs: number; maxMs: number }
  maxAttempts: number
  signal: AbortSignal | undefined
  logger: Logger
  dev: DevModeOptions | false | undefined
}

function checkInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(
      `option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    )
  }
  return value
}

function resolve(options: ConnectBridgeOptions): Resolved {
  const backoff = options.backoff ?? { initialMs: 10, maxMs: 5000 }
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY
  if (maxAttempts !== Number.POSITIVE_INFINITY)
    checkInt('maxAttempts', maxAttempts, 1, Number.MAX_SAFE_INTEGER)
  return {
    hostCid: checkInt('hostCid', options.hostCid ?? BRIDGE_HOST_CID, 0, 0xffffffff),
    port: checkInt('port', options.port ?? BRIDGE_INIT_PORT, 0, 0xffffffff),
    logPort: checkInt('logPort', options.logPort ?? BRIDGE_LOG_PORT, 0, 0xffffffff),
    stepTimeoutMs: checkInt(
      'stepTimeoutMs',
      options.stepTimeoutMs ?? HANDSHAKE_STEP_TIMEOUT_MS,
      1,
      2_147_483_647,
    ),
    backoff: {
      initialMs: checkInt('backoff.initialMs', backoff.initialMs, 1, 2_147_483_647),
      maxMs: checkInt('backoff.maxMs', backoff.maxMs, 1, 2_147_483_647),
    },
    maxAttempts,
    signal: options.signal,
    logger: (options.logger ?? silentLogger).child({ component: 'bridge-enclave' }),
    dev: options.dev,
  }
}

function devOption(dev: DevModeOptions | false | undefined): { dev?: DevModeOptions | false } {
  return dev === undefined ? {} : { dev }
}

function parseEnvLine(line: Buffer): Record<string, string> {
  let value: unknown
  try {
    value = JSON.parse(line.toString('utf8'))
  } catch (err) {
    throw new HandshakeFailedError('the environment line from the host is not valid JSON', { cause: err })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HandshakeFailedError('the environment line from the host is not a JSON object')
  }
  const entries = Object.entries(value)
  for (const [key, v] of entries) {
    if (typeof v !== 'string') {
      throw new HandshakeFailedError(`environment variable ${key} from the host is not a string`)
    }
  }
  // fromEntries defines own properties, so a "__proto__" key cannot touch the prototype.
  return Object.freeze(Object.fromEntries(entries)) as Record<string, string>
}

/** The state of a handshake between the environment step and the final ACK. */
export type HandshakeState = 'awaiting-settings' | 'finishing' | 'done' | 'closed'

/** A session whose tunnels are ready: the host acknowledged the settings. */
export interface BridgeSession {
  readonly env: Readonly<Record<string, string>>
  readonly settings: BridgeSettings
  /** Running unless `finish` was called with `{ watchdog: false }`. */
  readonly watchdog: EnclaveWatchdog | undefined
  /** Where the host listens, for the log, tunnel and HTTP helpers. */
  readonly hostCid: number
  readonly logPort: number
  readonly dev: DevModeOptions | false | undefined
  /** Stops the watchdog. */
  close(): void
}

/**
 * The enclave side of a handshake in progress: the host's environment has arrived, and the
 * enclave now declares its tunnels with `finish(settings)`.
 */
export class BridgeHandshake {
  readonly env: Readonly<Record<string, string>>
  #state: HandshakeState = 'awaiting-settings'
  readonly #socket: Socket
  readonly #reader: SocketReader
  readonly #options: Resolved

  /** @internal use `connectBridge` */
  constructor(socket: Socket, reader: SocketReader, env: Record<string, string>, options: Resolved) {
    this.#socket = socket
    this.#reader = reader
    this.env = env
    this.#options = options
  }

  get state(): HandshakeState {
    return this.#state
  }

  /**
   * Sends the settings and waits for the host's ACK (its tunnels are then listening), closes the
   * handshake connection and starts the watchdog.
   */
  async finish(
    settings: BridgeSettings,
    { watchdog = true }: { watchdog?: boolean } = {},
  ): Promise<BridgeSession> {
    if (this.#state !== 'awaiting-settings') {
      throw new HandshakeFailedError(`finish() called in state ${this.#state}; it may be called once`)
    }
    this.#state = 'finishing'
    const o = this.#options
    try {
      const wire = settingsToJson(settings)
      this.#socket.write(`${JSON.stringify(wire)}\n`)
      let line: Buffer
      try {
        line = await this.#reader.readLine(64, {
          timeoutMs: o.stepTimeoutMs,
          ...(o.signal ? { signal: o.signal } : {}),
          what: "the host's ACK",
        })
      } catch (err) {
        if (err instanceof ReadFailure && err.reason === 'aborted')
          throw new AbortedError('the handshake', { cause: err })
        throw new MissingAckError(
          `missing ACK from the bridge host: ${(err as Error).message} (the host logs why it rejected the settings)`,
          { cause: err },
        )
      }
      if (line.length !== 1 || line[0] !== 0x06) {
        throw new MissingAckError(
          `expected an ACK from the bridge host, got ${JSON.stringify(line.toString('latin1'))}`,
        )
      }
    } finally {
      this.#state = 'closed'
      this.#reader.release()
      this.#socket.end()
    }
    this.#state = 'done'
    o.logger.info({ appName: settings.appName }, 'bridge handshake complete; tunnels ready')
    const dog = watchdog
      ? new EnclaveWatchdog({
          enclaveId: settings.watchdog.enclaveId,
          intervalMs: settings.watchdog.intervalMs,
          hostCid: o.hostCid,
          port: o.port,
          logger: o.logger,
          ...devOption(o.dev),
        })
      : undefined
    return {
      env: this.env,
      settings,
      watchdog: dog,
      hostCid: o.hostCid,
      logPort: o.logPort,
      dev: o.dev,
      close: () => dog?.stop(),
    }
  }

  /** Abandons the handshake. */
  close(): void {
    if (this.#state === 'done') return
    this.#state = 'closed'
    this.#reader.release()
    this.#socket.destroy()
  }
}

async function attempt(o: Resolved): Promise<BridgeHandshake> {
  const address = `vsock://${o.hostCid}:${o.port}`
  const socket = await connect(address, {
    timeoutMs: o.stepTimeoutMs,
    ...(o.signal ? { signal: o.signal } : {}),
    ...devOption(o.dev),
  })
  const reader = new SocketReader(socket)
  try {
    socket.write(ACK)
    const line = await reader.readLine(MAX_HANDSHAKE_LINE_BYTES, {
      timeoutMs: o.stepTimeoutMs,
      ...(o.signal ? { signal: o.signal } : {}),
      what: 'the environment line',
    })
    return new BridgeHandshake(socket, reader, parseEnvLine(line), o)
  } catch (err) {
    reader.release()
    socket.destroy()
    throw err
  }
}

/**
 * Connects to the bridge host and runs the first half of the handshake (ACK, environment), retrying
 * with exponential backoff (10 ms up to 5 s) until the host answers.
 *
 * @example
 * const handshake = await connectBridge()
 * const session = await handshake.finish({ appName: 'hello', watchdog: { enclaveId, intervalMs: 30_000 },
 *   logger: { level: 'info' }, servers: [...], clients: [...] })
 */
export async function connectBridge(options: ConnectBridgeOptions = {}): Promise<BridgeHandshake> {
  const o = resolve(options)
  const backoff = createBackoff(o.backoff)
  let lastError: unknown
  for (let n = 1; n <= o.maxAttempts; n++) {
    if (o.signal?.aborted) throw new AbortedError('connecting to the bridge host', { cause: o.signal.reason })
    try {
      return await attempt(o)
    } catch (err) {
      if (o.signal?.aborted) throw new AbortedError('connecting to the bridge host', { cause: err })
      lastError = err
      o.logger.debug({ err, attempt: n }, 'bridge handshake attempt failed; retrying')
    }
    if (n < o.maxAttempts) await backoff.wait(o.signal)
  }
  if (lastError instanceof HandshakeFailedError) throw lastError
  throw new HandshakeFailedError(
    `could not reach the bridge host at vsock ${o.hostCid}:${o.port} after ${o.maxAttempts} attempts: ${(lastError as Error)?.message}`,
    { cause: lastError },
  )
}
