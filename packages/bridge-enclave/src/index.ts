/**
 * @enclave/bridge-enclave: the enclave side of the enclave bridge, wire-compatible with DIMO's Go
 * enclave-bridge. Connect and hand-shake with the host, read the forwarded environment with types,
 * declare server and client tunnels, log to the host, run the watchdog, serve HTTP on a vsock
 * port, and make HTTP requests out through a client tunnel.
 *
 * @example
 * ```ts
 * import { connectBridge, createBridgeDispatcher, newEnclaveId, serveHttp } from '@enclave/bridge-enclave'
 *
 * const handshake = await connectBridge()
 * const session = await handshake.finish({
 *   appName: 'hello', logger: { level: 'info' },
 *   watchdog: { enclaveId: newEnclaveId(), intervalMs: 30_000 },
 *   servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: 8080 }],
 *   clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }],
 * })
 * await serveHttp(http.createServer((_, res) => res.end('hi')), { port: 5001 })
 * const res = await fetch('https://example.com', { dispatcher: createBridgeDispatcher({ port: 5002 }) })
 * ```
 */

export type { Logger } from '@enclave/logger'
export { enclaveCid } from './cid.js'
export {
  BRIDGE_HOST_CID,
  BRIDGE_INIT_PORT,
  BRIDGE_LOG_PORT,
  CLIENT_DIAL_TIMEOUT_MS,
  DEFAULT_CLIENT_REQUEST_TIMEOUT_MS,
  HANDSHAKE_STEP_TIMEOUT_MS,
  MAX_DIAL_ERROR_LINE_BYTES,
  MAX_HANDSHAKE_LINE_BYTES,
  MAX_TARGET_LINE_BYTES,
  NAK_BYTE,
} from './constants.js'
export { type DialOptions, dialThroughBridge, formatTarget } from './dial.js'
export { type EnvResult, type EnvSpec, type EnvVar, envVar, parseEnv } from './env.js'
export {
  AbortedError,
  BRIDGE_ENCLAVE_ERROR_CODES,
  BridgeEnclaveError,
  type BridgeEnclaveErrorCode,
  DestinationDeniedError,
  DialFailedError,
  EnclaveIdMismatchError,
  HandshakeFailedError,
  HeartbeatTimeoutError,
  InvalidEnvError,
  InvalidOptionError,
  InvalidSettingsError,
  MissingAckError,
  ProxyHeaderError,
} from './errors.js'
export {
  ACK,
  BridgeHandshake,
  type BridgeSession,
  type ConnectBridgeOptions,
  connectBridge,
  type HandshakeState,
} from './handshake.js'
export {
  decodeHeartbeat,
  encodeHeartbeat,
  HEARTBEAT_RECORD_BYTES,
  type HeartbeatChannelHandlers,
  runHeartbeatChannel,
} from './heartbeat.js'
export {
  type BridgeDispatcherOptions,
  BridgeHttpAgent,
  BridgeHttpsAgent,
  type BridgeTunnelOptions,
  createBridgeDispatcher,
  type HttpOnVsock,
  serveHttp,
} from './http.js'
export {
  BridgeLogDestination,
  createBridgeLogger,
  createLogDestination,
  type LogDestinationOptions,
  type LogDestinationState,
} from './logs.js'
export {
  encodeProxyV1,
  PROXY_V1_MAX_BYTES,
  type ProxyHeader,
  parseProxyV1,
  proxyHeaderOf,
  readProxyHeader,
} from './proxy-protocol.js'
export { ReadFailure, type ReadFailureReason, type ReadOptions, SocketReader } from './reader.js'
export {
  type BridgeSettings,
  type ClientTunnelSettings,
  MAX_TUNNELS_PER_KIND,
  newEnclaveId,
  normalizeUuid,
  type ParsedSettings,
  type ServerTunnelSettings,
  settingsFromJson,
  settingsToJson,
  uuidFromBytes,
  uuidToBytes,
} from './settings.js'
export {
  EnclaveWatchdog,
  type EnclaveWatchdogEvents,
  type EnclaveWatchdogOptions,
  type WatchdogState,
} from './watchdog.js'
