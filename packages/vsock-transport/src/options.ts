import { isAbsolute } from 'node:path'
import { VMADDR_CID_PARENT } from './address.js'
import { InvalidOptionError } from './errors.js'

/**
 * Dev mode: `vsock://CID:PORT` becomes the Unix socket `<dir>/<CID>_<PORT>.sock`, so code written
 * for vsock runs unchanged on a laptop or in CI. Environment: ENCLAVE_VSOCK_DEV_DIR, ENCLAVE_VSOCK_DEV_CID.
 */
export interface DevModeOptions {
  /** Absolute folder holding the emulated sockets (created with mode 0700 on listen). */
  dir: string
  /** This process's CID: what `vsock://any:PORT` listens as. @default 3 (the parent) */
  cid?: number
}

export interface ConnectOptions {
  /** Cancels the attempt, and destroys the socket if aborted after it connected (like net.connect). */
  signal?: AbortSignal
  /** Milliseconds for connect (and, for hvsock, the `OK` handshake) to finish. @default no limit beyond the kernel's */
  timeoutMs?: number
  /** Dev-mode settings; `false` disables dev mode even if ENCLAVE_VSOCK_DEV_DIR is set. @default from env */
  dev?: DevModeOptions | false
  /** Keep the writable side open after the peer ends (half-close; then call end() yourself). @default false, as net */
  allowHalfOpen?: boolean
}

export interface ListenOptions {
  /** Closes the server when aborted. */
  signal?: AbortSignal
  /** Length of the kernel's pending-connection queue. @default 511 */
  backlog?: number
  /** Dev-mode settings; `false` disables dev mode even if ENCLAVE_VSOCK_DEV_DIR is set. @default from env */
  dev?: DevModeOptions | false
  /** Accepted sockets keep their writable side open after the peer ends (half-close). @default false, as net */
  allowHalfOpen?: boolean
}

export interface ResolvedDevMode {
  readonly dir: string
  readonly cid: number
}

export interface ResolvedConnectOptions {
  readonly signal: AbortSignal | undefined
  readonly timeoutMs: number | undefined
  readonly dev: ResolvedDevMode | undefined
  readonly allowHalfOpen: boolean
}

export interface ResolvedListenOptions {
  readonly signal: AbortSignal | undefined
  readonly backlog: number
  readonly dev: ResolvedDevMode | undefined
  readonly allowHalfOpen: boolean
}

export const DEFAULTS = Object.freeze({
  backlog: 511,
  allowHalfOpen: false,
  devCid: VMADDR_CID_PARENT,
})

/** Longest timer Node accepts (2^31 - 1 ms). */
const MAX_TIMEOUT_MS = 2_147_483_647

function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined
  if (!(signal instanceof AbortSignal)) throw new InvalidOptionError('option signal must be an AbortSignal')
  return signal
}

function checkBoolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new InvalidOptionError(`option ${name} must be a boolean`)
  return value
}

function checkCid(value: unknown, name: string): number {
  const cid = typeof value === 'string' && /^\d{1,10}$/.test(value) ? Number(value) : value
  if (typeof cid !== 'number' || !Number.isInteger(cid) || cid < 0 || cid >= 0xffffffff) {
    throw new InvalidOptionError(
      `${name} must be an integer CID from 0 to 4294967294, got ${JSON.stringify(value)}`,
    )
  }
  return cid
}

/** Dev mode from the option, else from the environment; undefined when off. */
export function resolveDevMode(
  dev: DevModeOptions | false | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedDevMode | undefined {
  if (dev === false) return undefined
  if (dev === undefined) {
    const dir = env.ENCLAVE_VSOCK_DEV_DIR
    if (!dir) return undefined
    if (!isAbsolute(dir)) {
      throw new InvalidOptionError(
        `ENCLAVE_VSOCK_DEV_DIR must be an absolute path, got ${JSON.stringify(dir)}`,
      )
    }
    const cidText = env.ENCLAVE_VSOCK_DEV_CID
    const cid = cidText ? checkCid(cidText, 'ENCLAVE_VSOCK_DEV_CID') : DEFAULTS.devCid
    return Object.freeze({ dir, cid })
  }
  if (dev === null || typeof dev !== 'object') {
    throw new InvalidOptionError('option dev must be { dir, cid? } or false')
  }
  if (typeof dev.dir !== 'string' || !isAbsolute(dev.dir)) {
    throw new InvalidOptionError(`option dev.dir must be an absolute path, got ${JSON.stringify(dev.dir)}`)
  }
  const cid = dev.cid === undefined ? DEFAULTS.devCid : checkCid(dev.cid, 'option dev.cid')
  return Object.freeze({ dir: dev.dir, cid })
}

export function resolveConnectOptions(options: ConnectOptions = {}): ResolvedConnectOptions {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionError('connect options must be an object')
  const { timeoutMs } = options
  if (
    timeoutMs !== undefined &&
    (typeof timeoutMs !== 'number' ||
      !Number.isFinite(timeoutMs) ||
      timeoutMs <= 0 ||
      timeoutMs > MAX_TIMEOUT_MS)
  ) {
    throw new InvalidOptionError(
      `option timeoutMs must be a number from 1 to ${MAX_TIMEOUT_MS}, got ${timeoutMs}`,
    )
  }
  return Object.freeze({
    signal: checkSignal(options.signal),
    timeoutMs,
    dev: resolveDevMode(options.dev),
    allowHalfOpen: checkBoolean(options.allowHalfOpen, 'allowHalfOpen', DEFAULTS.allowHalfOpen),
  })
}

export function resolveListenOptions(options: ListenOptions = {}): ResolvedListenOptions {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionError('listen options must be an object')
  const { backlog = DEFAULTS.backlog } = options
  if (!Number.isInteger(backlog) || backlog < 1 || backlog > 65535) {
    throw new InvalidOptionError(`option backlog must be an integer from 1 to 65535, got ${backlog}`)
  }
  return Object.freeze({
    signal: checkSignal(options.signal),
    backlog,
    dev: resolveDevMode(options.dev),
    allowHalfOpen: checkBoolean(options.allowHalfOpen, 'allowHalfOpen', DEFAULTS.allowHalfOpen),
  })
}
