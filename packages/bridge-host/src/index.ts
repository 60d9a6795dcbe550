/**
 * @enclave/bridge-host: the parent-instance half of the enclave bridge, wire-compatible with DIMO's
 * Go enclave-bridge. Takes the enclave's handshake on vsock 5000, forwards an allowlisted
 * environment, opens the server and client tunnels the enclave declares, copies its log lines to
 * stdout whole, and runs the watchdog.
 *
 * @example
 * ```ts
 * import { createBridgeHost } from '@enclave/bridge-host'
 *
 * const host = createBridgeHost({ forwardEnv: ['APP_*'], allowDestinations: ['**.amazonaws.com:443'] }, { logger })
 * host.on('failure', () => host.close().then(() => process.exit(1)))
 * await host.start()
 * ```
 */

export {
  ClientTunnel,
  type ClientTunnelOptions,
  type ClientTunnelStats,
  parseTarget,
} from './client-tunnel.js'
export {
  createDestinationPolicy,
  type DestinationPolicy,
  isProtectedAddress,
  type ResolveHost,
} from './destinations.js'
export { checkEnvPatterns, selectEnv } from './env-allowlist.js'
export {
  BRIDGE_HOST_ERROR_CODES,
  BridgeHostError,
  type BridgeHostErrorCode,
  EnclaveIdMismatchError,
  HandshakeFailedError,
  type HandshakeStep,
  HeartbeatTimeoutError,
  HostClosingError,
  InvalidOptionError,
  ListenFailedError,
  TunnelFailedError,
} from './errors.js'
export {
  type BridgeHost,
  type BridgeHostEvents,
  type BridgeHostState,
  type BridgeHostStats,
  createBridgeHost,
  type ReadyInfo,
  type TunnelSnapshot,
} from './host.js'
export type { LogSinkStats } from './log-sink.js'
export { createBridgeMetrics, healthOf, startMonitor } from './monitor.js'
export {
  type BridgeHostOptions,
  DEFAULTS,
  type ResolvedBridgeHostOptions,
  resolveOptions,
  type WatchdogFailureMode,
} from './options.js'
export { MAX_WATCHDOG_CHANNELS, type PeerCidSource } from './peer-policy.js'
