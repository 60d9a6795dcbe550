import type { Writable } from 'node:stream'
import {
  BRIDGE_INIT_PORT,
  BRIDGE_LOG_PORT,
  HANDSHAKE_STEP_TIMEOUT_MS,
  MAX_HANDSHAKE_LINE_BYTES,
} from '@enclave/bridge-enclave'
import type { DevModeOptions } from '@enclave/vsock-transport'
import { createDestinationPolicy, type DestinationPolicy } from './destinations.js'
import { checkEnvPatterns } from './env-allowlist.js'
import { InvalidOptionError } from './errors.js'

/** What the host does when the watchdog misses an interval or sees a wrong id. */
export type WatchdogFailureMode = 'fail' | 'wait'

/** Options of `createBridgeHost`. */
export interface BridgeHostOptions {
  /**
   * vsock CID to listen on; `any` takes every local CID (on the parent that is 3).
   * @default 'any'
   */
  listenCid?: number | 'any'
  /**
   * Write a PROXY protocol v1 header naming the TCP client before each server-tunnel connection's
   * bytes (the enclave must expect it: `serveHttp(..., { proxyProtocol: true })`). Go enclaves do
   * not understand it, so it is off by default.
   * @default false
   */
  proxyProtocol?: boolean
  /** Handshake + watchdog port. @default 5000 (Go: ENCLAVE_BRIDGE_VSOCK_INIT_PORT) */
  initPort?: number
  /** Log port. @default 4999 (Go: ENCLAVE_BRIDGE_VSOCK_STDOUT_PORT) */
  logPort?: number
  /** Where the forwarded variables come from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>
  /** Allowlist of variables to forward: `NAME` or `PREFIX*`. @default [] (nothing) */
  forwardEnv?: readonly string[]
  /** Forward the whole environment, as DIMO's Go host does (secrets included). @default false */
  forwardAllEnv?: boolean
  /**
   * Egress allowlist of client tunnels (see `createDestinationPolicy`). Unset: any destination
   * (Go's behaviour); once set, everything not listed is denied.
   */
  allowDestinations?: readonly string[]
  /**
   * Interface server tunnels bind on. Go binds all interfaces; set `0.0.0.0` for a load balancer.
   * @default '127.0.0.1'
   */
  serverBindHost?: string
  /**
   * `fail`: the state becomes `failed` and `failure` is emitted (the CLI exits non-zero so a
   * supervisor restarts it, like Go's host). `wait`: the session is torn down and the host waits
   * for a new handshake.
   * @default 'fail'
   */
  onWatchdogFailure?: WatchdogFailureMode
  /** Each handshake step must complete within this, in ms. @default 10000 */
  handshakeTimeoutMs?: number
  /** Longest handshake line accepted, in bytes. @default 1048576 */
  maxHandshakeLineBytes?: number
  /** Where enclave log lines go. @default process.stdout */
  logOutput?: Writable
  /** Longest enclave log line; longer ones are cut. @default 65536 */
  maxLogLineBytes?: number
  /** Connections each tunnel carries at once. @default 1024 */
  maxConnectionsPerTunnel?: number
  /** Close a tunnelled connection idle for this long, in ms (0: never). @default 0 */
  idleTimeoutMs?: number
  /** How long close() lets tunnelled connections finish, in ms. @default 10000 */
  drainTimeoutMs?: number
  /** vsock-transport dev mode; default: from ENCLAVE_VSOCK_DEV_DIR. */
  dev?: DevModeOptions | false
  /**
   * Enclave CIDs trusted besides the one the handshake came from. By default `servers[].enclaveCid`
   * must equal the handshake peer's CID, and while a session runs only that CID may hand-shake
   * again or open watchdog connections. List more CIDs here for a setup that needs them.
   * @default []
   */
  allowEnclaveCids?: readonly number[]
}

export interface ResolvedBridgeHostOptions {
  readonly listenCid: number | 'any'
  readonly initPort: number
  readonly logPort: number
  readonly forwardedEnv: Readonly<Record<string, string | undefined>>
  readonly forwardEnv: readonly string[]
  readonly forwardAllEnv: boolean
  readonly policy: DestinationPolicy | undefined
  readonly serverBindHost: string
  readonly proxyProtocol: boolean
  readonly onWatchdogFailure: WatchdogFailureMode
  readonly handshakeTimeoutMs: number
  readonly maxHandshakeLineBytes: number
  readonly logOutput: Writable
  readonly maxLogLineBytes: number
  readonly maxConnectionsPerTunnel: number
  readonly idleTimeoutMs: number
  readonly drainTimeoutMs: number
  readonly dev: DevModeOptions | false | undefined
  readonly allowEnclaveCids: readonly number[]
}

export const DEFAULTS = Object.freeze({
  listenCid: 'any' as const,
  initPort: BRIDGE_INIT_PORT,
  logPort: BRIDGE_LOG_PORT,
  serverBindHost: '127.0.0.1',
  onWatchdogFailure: 'fail' as const,
  handshakeTimeoutMs: HANDSHAKE_STEP_TIMEOUT_MS,
  maxHandshakeLineBytes: MAX_HANDSHAKE_LINE_BYTES,
  maxLogLineBytes: 64 * 1024,
  maxConnectionsPerTunnel: 1024,
  idleTimeoutMs: 0,
  drainTimeoutMs: 10_000,
})

const MAX_TIMER_MS = 2_147_483_647

function int(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(
      `option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    )
  }
  return value
}

/** Applies defaults and checks every option once; never mutates `options`. */
export function resolveOptions(options: BridgeHostOptions = {}): ResolvedBridgeHostOptions {
  const listenCid = options.listenCid ?? DEFAULTS.listenCid
  if (listenCid !== 'any') int('listenCid', listenCid, 0, 0xfffffffe)
  const mode = options.onWatchdogFailure ?? DEFAULTS.onWatchdogFailure
  if (mode !== 'fail' && mode !== 'wait') {
    throw new InvalidOptionError(`option onWatchdogFailure must be 'fail' or 'wait', got ${String(mode)}`)
  }
  const initPort = int('initPort', options.initPort ?? DEFAULTS.initPort, 0, 0xfffffffe)
  const logPort = int('logPort', options.logPort ?? DEFAULTS.logPort, 0, 0xfffffffe)
  if (initPort === logPort)
    throw new InvalidOptionError(`options initPort and logPort must differ (both ${initPort})`)
  return Object.freeze({
    listenCid,
    initPort,
    logPort,
    forwardedEnv: options.env ?? process.env,
    forwardEnv: Object.freeze(checkEnvPatterns(options.forwardEnv ?? [])),
    forwardAllEnv: options.forwardAllEnv ?? false,
    policy:
      options.allowDestinations === undefined
        ? undefined
        : createDestinationPolicy(options.allowDestinations),
    serverBindHost: options.serverBindHost ?? DEFAULTS.serverBindHost,
    proxyProtocol: options.proxyProtocol ?? false,
    onWatchdogFailure: mode,
    handshakeTimeoutMs: int(
      'handshakeTimeoutMs',
      options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
      1,
      MAX_TIMER_MS,
    ),
    maxHandshakeLineBytes: int(
      'maxHandshakeLineBytes',
      options.maxHandshakeLineBytes ?? DEFAULTS.maxHandshakeLineBytes,
      64,
      64 * 1024 * 1024,
    ),
    logOutput: options.logOutput ?? process.stdout,
    maxLogLineBytes: int(
      'maxLogLineBytes',
      options.maxLogLineBytes ?? DEFAULTS.maxLogLineBytes,
      64,
      64 * 1024 * 1024,
    ),
    maxConnectionsPerTunnel: int(
      'maxConnectionsPerTunnel',
      options.maxConnectionsPerTunnel ?? DEFAULTS.maxConnectionsPerTunnel,
      1,
      1_000_000,
    ),
    idleTimeoutMs: int('idleTimeoutMs', options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs, 0, MAX_TIMER_MS),
    drainTimeoutMs: int('drainTimeoutMs', options.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs, 0, MAX_TIMER_MS),
    dev: options.dev,
    allowEnclaveCids: Object.freeze(
      (options.allowEnclaveCids ?? []).map((cid, i) => int(`allowEnclaveCids[${i}]`, cid, 4, 0xfffffffe)),
    ),
  })
}
