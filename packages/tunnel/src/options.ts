import type { Server, Socket } from 'node:net'
import type { ConnectOptions, ListenOptions, TransportAddress } from '@enclave/vsock-transport'
import { InvalidOptionsError } from './errors.js'

/** What the resolver learns about the inbound connection. */
export interface ResolveInfo {
  /** Connection number within this tunnel, starting at 1. */
  readonly id: number
  /** Aborted when the resolve timeout passes, the inbound peer goes away or the tunnel closes. */
  readonly signal: AbortSignal
}

/** Where to send one inbound connection, and bytes to write to the target before relaying. */
export interface Resolution {
  address: string | TransportAddress
  /** Written to the target before any relayed byte (a header, or bytes read past a header). */
  preamble?: Buffer
}

/**
 * Picks the target of one inbound connection. It may read a header off `inbound` first (see
 * `readPrefix`); bytes it reads past the header must come back as `preamble`.
 */
export type Resolver = (inbound: Socket, info: ResolveInfo) => Promise<Resolution> | Resolution

/** Options shared by `forward` and `pipeConnection`. */
export interface PipeOptions {
  /**
   * Close the pair when no byte has moved in either direction for this long, in ms. 0 disables.
   * @default 0
   */
  idleTimeoutMs?: number
  /**
   * Relay in the kernel with splice(2) (Linux, vsock-transport's addon) whenever both sockets
   * allow it, else through streams. `false` always uses streams. The default comes from the
   * environment: `ENCLAVE_TUNNEL_KERNEL_RELAY=0` turns it off.
   * @default true
   */
  kernelRelay?: boolean
}

/** `PipeOptions` after defaults are applied and checked. */
export interface ResolvedPipeOptions {
  readonly idleTimeoutMs: number
  readonly kernelRelay: boolean
}

/** Options of `forward`. */
export interface TunnelOptions extends PipeOptions {
  /** Listen address (`tcp://`, `unix://`, `vsock://`, `hvsock://`) or a server you created. */
  from: string | TransportAddress | Server
  /** Target address, or a resolver that picks one per connection. */
  to: string | TransportAddress | Resolver
  /**
   * Give up dialling the target after this long, in ms.
   * @default 10000
   */
  connectTimeoutMs?: number
  /**
   * Give up on a resolver (for example one waiting for a header) after this long, in ms.
   * @default 10000
   */
  resolveTimeoutMs?: number
  /**
   * Connections carried at once; more are closed on arrival and counted as `refused`.
   * @default 1024
   */
  maxConnections?: number
  /**
   * How long `close()` waits for active connections before cutting them, in ms.
   * @default 10000
   */
  drainTimeoutMs?: number
  /** Passed to vsock-transport's `listen` (dev mode, backlog) when `from` is an address. */
  listen?: Omit<ListenOptions, 'signal'>
  /** Passed to vsock-transport's `connect` (dev mode) for every target. */
  connect?: Omit<ConnectOptions, 'signal' | 'timeoutMs'>
}

/** `TunnelOptions` after defaults are applied and checked. */
export interface ResolvedTunnelOptions {
  readonly from: string | TransportAddress | Server
  readonly to: string | TransportAddress | Resolver
  readonly connectTimeoutMs: number
  readonly resolveTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly kernelRelay: boolean
  readonly maxConnections: number
  readonly drainTimeoutMs: number
  readonly listen: Omit<ListenOptions, 'signal'>
  readonly connect: Omit<ConnectOptions, 'signal' | 'timeoutMs'>
}

export const DEFAULTS = Object.freeze({
  connectTimeoutMs: 10_000,
  resolveTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  maxConnections: 1024,
  drainTimeoutMs: 10_000,
})

// setTimeout cannot wait longer than this; a larger value would fire at once.
const MAX_TIMER_MS = 2_147_483_647

function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionsError(
      `option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    )
  }
  return value
}

/** Applies defaults and checks every option once; never mutates `options`. */
export function resolveTunnelOptions(options: TunnelOptions): ResolvedTunnelOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('forward() needs an options object with `from` and `to`')
  }
  const { from, to } = options
  if (from === undefined || from === null || (typeof from !== 'string' && typeof from !== 'object')) {
    throw new InvalidOptionsError('option from must be an address string, an address object or a net.Server')
  }
  if (to === undefined || to === null || !['string', 'object', 'function'].includes(typeof to)) {
    throw new InvalidOptionsError(
      'option to must be an address string, an address object or a resolver function',
    )
  }
  return Object.freeze({
    from,
    to,
    connectTimeoutMs: checkInteger(
      'connectTimeoutMs',
      options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      1,
      MAX_TIMER_MS,
    ),
    resolveTimeoutMs: checkInteger(
      'resolveTimeoutMs',
      options.resolveTimeoutMs ?? DEFAULTS.resolveTimeoutMs,
      1,
      MAX_TIMER_MS,
    ),
    ...resolvePipeOptions(options),
    maxConnections: checkInteger(
      'maxConnections',
      options.maxConnections ?? DEFAULTS.maxConnections,
      1,
      1_000_000,
    ),
    drainTimeoutMs: checkInteger(
      'drainTimeoutMs',
      options.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs,
      0,
      MAX_TIMER_MS,
    ),
    listen: Object.freeze({ ...options.listen }),
    connect: Object.freeze({ ...options.connect }),
  })
}

/** Applies defaults to the options of one relayed pair; never mutates `options`. */
export function resolvePipeOptions(options: PipeOptions | undefined): ResolvedPipeOptions {
  const kernelRelay = options?.kernelRelay ?? process.env.ENCLAVE_TUNNEL_KERNEL_RELAY !== '0'
  if (typeof kernelRelay !== 'boolean') {
    throw new InvalidOptionsError(`option kernelRelay must be true or false, got ${String(kernelRelay)}`)
  }
  return Object.freeze({
    idleTimeoutMs: checkInteger(
      'idleTimeoutMs',
      options?.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      0,
      MAX_TIMER_MS,
    ),
    kernelRelay,
  })
}
