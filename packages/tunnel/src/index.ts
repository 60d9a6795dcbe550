/**
 * @enclave/tunnel: the one forwarding engine of the Enclave Framework. Listens on any transport
 * address of @enclave/vsock-transport and relays each connection to a fixed target or to one a
 * resolver picks (for example from a transparent-proxy header), with backpressure, half-close,
 * timeouts, a connection limit, graceful drain and stats.
 *
 * @example
 * ```ts
 * import { forward } from '@enclave/tunnel'
 *
 * const tunnel = await forward({ from: 'tcp://127.0.0.1:8080', to: 'vsock://16:8080' })
 * process.once('SIGTERM', () => tunnel.close())
 * ```
 */

export { type Logger, silentLogger } from '@enclave/logger'
export {
  ConnectFailedError,
  ConnectTimeoutError,
  IdleTimeoutError,
  InvalidOptionsError,
  ListenFailedError,
  MaxConnectionsError,
  PrefixTooLargeError,
  PrematureCloseError,
  ResolveFailedError,
  ResolveTimeoutError,
  SocketError,
  TunnelClosedError,
  TunnelError,
  type TunnelErrorCode,
} from './errors.js'
export {
  DEFAULTS,
  type PipeOptions,
  type Resolution,
  type ResolveInfo,
  type Resolver,
  type TunnelOptions,
} from './options.js'
export { type Pipe, type PipeResult, pipeConnection } from './pipe.js'
export { type PrefixResult, type ReadPrefixOptions, readPrefix } from './prefix.js'
export {
  type ConnectionSummary,
  forward,
  type Tunnel,
  type TunnelEvents,
  type TunnelState,
  type TunnelStats,
} from './tunnel.js'
