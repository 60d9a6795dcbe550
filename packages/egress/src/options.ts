import type { Logger } from '@enclave/tunnel'
import type { DevModeOptions } from '@enclave/vsock-transport'
import { InvalidOptionsError } from './errors.js'
import type { EgressPolicyConfig } from './policy.js'

/** One address a name resolved to. */
export interface ResolvedAddress {
  readonly address: string
  readonly family: number
}

/** Resolves a name once; the host half dials only the addresses it returns and checked. */
export type Resolve = (name: string, signal: AbortSignal) => Promise<readonly ResolvedAddress[]>

/** Options of `startEgressHost` (the host half, outside the enclave). */
export interface EgressHostOptions {
  /** The manifest's egress allow/deny lists. */
  readonly policy: EgressPolicyConfig
  /** Where enclaves connect. @default 'vsock://any:17002' */
  readonly address?: string
  /** Name resolution; inject one in tests. @default dns.lookup with all addresses */
  readonly resolve?: Resolve
  /** Give up resolving a name after this long, ms. @default 5000 */
  readonly resolveTimeoutMs?: number
  /** Give up dialling the destination after this long, ms. @default 10000 */
  readonly connectTimeoutMs?: number
  /** Close a connection that has not sent its request after this long, ms. @default 10000 */
  readonly requestTimeoutMs?: number
  /** Close a tunnel idle in both directions for this long, ms; 0 disables. @default 0 */
  readonly idleTimeoutMs?: number
  /** Tunnels carried at once; more are closed on arrival. @default 1024 */
  readonly maxConnections?: number
  /** vsock dev mode (simulator, tests). */
  readonly dev?: DevModeOptions | false
}

/** Options of `startEgressProxy` (the HTTP proxy inside the enclave). */
export interface EgressProxyOptions {
  /** The manifest's egress allow/deny lists; checked here too, to refuse early (see README). */
  readonly policy: EgressPolicyConfig
  /** TCP port on 127.0.0.1; 0 picks a free one. @default 10000 */
  readonly port?: number
  /** The host half. @default 'vsock://2:17002' (in dev mode CID 2 is the parent) */
  readonly hostAddress?: string
  /** Give up reaching the host half after this long, ms. @default 5000 */
  readonly connectTimeoutMs?: number
  /** Give up waiting for the host half's reply (it resolves and dials) after this long, ms. @default 20000 */
  readonly replyTimeoutMs?: number
  /** Close a tunnel idle in both directions for this long, ms; 0 disables. @default 0 */
  readonly idleTimeoutMs?: number
  /** Tunnels and requests carried at once; more get 503. @default 1024 */
  readonly maxConnections?: number
  /** vsock dev mode (simulator, tests). */
  readonly dev?: DevModeOptions | false
}

/** Options of `startTransparentEgress` (redirected TCP inside the enclave). */
export interface EgressTransparentOptions {
  /** The manifest's egress allow/deny lists (destinations are IP literals here). */
  readonly policy: EgressPolicyConfig
  /** TCP port the REDIRECT rule points at; 0 picks one. @default 10001 */
  readonly port?: number
  /** Listen address. @default '127.0.0.1' (where REDIRECT in OUTPUT delivers) */
  readonly listenHost?: string
  /** @default 'vsock://2:17002' */
  readonly hostAddress?: string
  /** @default 5000 */
  readonly connectTimeoutMs?: number
  /** @default 20000 */
  readonly replyTimeoutMs?: number
  /** @default 0 (off) */
  readonly idleTimeoutMs?: number
  /** @default 1024 */
  readonly maxConnections?: number
  readonly dev?: DevModeOptions | false
}

export const TRANSPARENT_DEFAULTS = Object.freeze({ port: 10_001, listenHost: '127.0.0.1' })

export interface Context {
  readonly logger?: Logger
}

export const HOST_DEFAULTS = Object.freeze({
  address: 'vsock://any:17002',
  resolveTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  maxConnections: 1024,
})

export const PROXY_DEFAULTS = Object.freeze({
  port: 10_000,
  hostAddress: 'vsock://2:17002',
  connectTimeoutMs: 5_000,
  replyTimeoutMs: 20_000,
  idleTimeoutMs: 0,
  maxConnections: 1024,
})

export function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionsError(
      `option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    )
  }
  return value
}

/** The host-half and connection settings the CONNECT proxy and the transparent listener share. */
export interface ResolvedTunnelSettings {
  readonly hostAddress: string
  readonly connectTimeoutMs: number
  readonly replyTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxConnections: number
  readonly dev: DevModeOptions | false | undefined
}

/** Validates and defaults those settings once, for either listener. */
export function resolveTunnelSettings(
  options: EgressProxyOptions | EgressTransparentOptions,
): ResolvedTunnelSettings {
  const timeout = (name: 'connectTimeoutMs' | 'replyTimeoutMs') =>
    integer(name, options[name] ?? PROXY_DEFAULTS[name], 1, 600_000)
  return {
    hostAddress: options.hostAddress ?? PROXY_DEFAULTS.hostAddress,
    connectTimeoutMs: timeout('connectTimeoutMs'),
    replyTimeoutMs: timeout('replyTimeoutMs'),
    ...connectionLimits(options, PROXY_DEFAULTS),
    dev: options.dev,
  }
}

/** The idle timeout and connection cap every egress listener takes, validated and defaulted. */
export function connectionLimits(
  options: { idleTimeoutMs?: number; maxConnections?: number },
  defaults: { idleTimeoutMs: number; maxConnections: number },
): { idleTimeoutMs: number; maxConnections: number } {
  return {
    idleTimeoutMs: integer(
      'idleTimeoutMs',
      options.idleTimeoutMs ?? defaults.idleTimeoutMs,
      0,
      2_147_483_647,
    ),
    maxConnections: integer(
      'maxConnections',
      options.maxConnections ?? defaults.maxConnections,
      1,
      1_000_000,
    ),
  }
}
