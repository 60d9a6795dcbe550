/**
 * @enclave/egress: outbound networking for Nitro Enclaves under an allow/deny policy. Inside the
 * enclave an HTTP proxy (CONNECT and absolute URIs) on 127.0.0.1; on the host its other half on
 * vsock 17002, which checks the policy again, resolves names once, refuses any name that resolves
 * into a denied or protected range (metadata, loopback, link-local) and dials the checked address.
 * Wire-compatible with enclaver's odyn and enclaver-run.
 *
 * @example
 * ```ts
 * import { startEgressHost, startEgressProxy } from '@enclave/egress'
 *
 * const policy = { allow: ['**.amazonaws.com', 'example.com'], deny: ['10.0.0.0/8'] }
 * const host = await startEgressHost({ policy })          // on the parent instance
 * const proxy = await startEgressProxy({ policy })        // inside the enclave
 * spawn('app', { env: { ...process.env, ...proxy.env } })
 * ```
 */

export type { Logger } from '@enclave/tunnel'
export {
  DialFailedError,
  EGRESS_ERROR_CODES,
  EgressError,
  type EgressErrorCode,
  HostUnreachableError,
  InvalidHostError,
  InvalidOptionsError,
  InvalidPolicyError,
  MalformedMessageError,
  RefusedError,
  ResolveFailedError,
  TimeoutError,
} from './errors.js'
export { type EgressHost, startEgressHost } from './host.js'
export type { Cidr, Ip } from './ip.js'
export {
  type Context as EgressContext,
  type EgressHostOptions,
  type EgressProxyOptions,
  type EgressTransparentOptions,
  HOST_DEFAULTS,
  PROXY_DEFAULTS,
  type Resolve,
  type ResolvedAddress,
  TRANSPARENT_DEFAULTS,
} from './options.js'
export {
  type EgressManifest,
  type EgressPlugin,
  type EgressPluginContext,
  type EgressPluginHandle,
  egressFromManifest,
  egressPlugin,
} from './plugin.js'
export {
  checkDestination,
  checkResolved,
  compilePolicy,
  type Destination,
  type EgressPolicy,
  type EgressPolicyConfig,
  normalizeHost,
  type Pattern,
  type Verdict,
} from './policy.js'
export { type EgressProxy, proxyEnv, startEgressProxy } from './proxy.js'
export { startTransparentEgress, type TransparentEgress } from './transparent.js'
export {
  encodeReply,
  encodeRequest,
  MAX_MESSAGE_BYTES,
  MessageDecoder,
  parseReply,
  parseRequest,
  type TunnelFailure,
  type TunnelReply,
  type TunnelRequest,
} from './wire.js'
