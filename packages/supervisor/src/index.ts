/**
 * @enclave/supervisor: odyn, the process that runs inside the enclave in front of the app.
 * It serves the status (vsock 17000) and log (vsock 17001) channels, starts plug-in services and
 * init-style services, runs the app in its own process group, forwards SIGTERM/SIGINT, reaps
 * orphans (PID 1 or child subreaper) and stops everything before it exits. The host half
 * (watchStatus, streamLogs) reads those channels.
 *
 * ```ts
 * import { createSupervisor } from '@enclave/supervisor'
 * const odyn = createSupervisor({ command: ['node', 'server.js'] })
 * await odyn.start()
 * const final = await odyn.finished   // { status: 'exited', code: 0 }
 * ```
 */

export type { Logger } from '@enclave/logger'
export {
  DEFAULT_APP_USER,
  loadOdynConfig,
  ODYN_CONFIG_FILE,
  type OdynConfig,
  parseOdynConfig,
  type RestartPolicy,
  type ServiceConfig,
} from './config.js'
export {
  CONTROL_PROTOCOL,
  type ControlClient,
  type ControlRequest,
  type ControlResponse,
  type ControlServerOptions,
  connectControl,
  startControlServer,
} from './control.js'
export {
  AddonUnavailableError,
  ConfigInvalidError,
  ConfigUnreadableError,
  ControlError,
  ERROR_CLASSES,
  HeartbeatFailedError,
  InvalidOptionsError,
  LaunchFailedError,
  NitroCliError,
  PcrMismatchError,
  ServiceGraphError,
  SpawnFailedError,
  StartupFailedError,
  StateError,
  StatusInvalidError,
  SUPERVISOR_ERROR_CODES,
  SupervisorError,
  type SupervisorErrorCode,
} from './errors.js'
export { HEARTBEAT_ADDRESS, HEARTBEAT_BYTE, type HeartbeatOptions, sendBootHeartbeat } from './heartbeat.js'
export { connectWithRetry, type HostConnectOptions, type LogStream, streamLogs, watchStatus } from './host.js'
export {
  type HostPlugin,
  type HostPluginContext,
  type LaunchedEnclave,
  type Launcher,
  type RunEnclaveOptions,
  type RunEnclaveResult,
  runEnclave,
} from './launcher.js'
export { createLogRing, type LineAssembler, type LogRing, type LogRingOptions } from './log-ring.js'
export { checkMeasurements, parseExpectedPcrs } from './measurements.js'
export type { ReaperAddon } from './native.js'
export { NitroCliLauncher, type NitroCliOptions, type NitroEnclaveInfo } from './nitro-cli.js'
export type { ProcessExit, ProcessUser } from './process.js'
export { createReaper, type Reaper, type ReaperOptions, zombieChildren } from './reaper.js'
export {
  type ServiceManager,
  type ServiceState,
  type ServiceStatus,
  serviceOrder,
  shouldRestart,
} from './services.js'
export { DEV_NSM_PCRS_ENV, SimulatorLauncher, type SimulatorOptions } from './simulator.js'
export {
  APP_LOG_PORT,
  type EnclaveStatus,
  EXIT_FATAL,
  EXIT_INTERRUPTED,
  EXIT_SIGNALED,
  encodeStatus,
  exitCodeForStatus,
  isFinal,
  parseStatus,
  STATUS_PORT,
  StatusDecoder,
  type StatusDecoderOptions,
} from './status.js'
export {
  createSupervisor,
  type PluginContext,
  type PluginHandle,
  type Supervisor,
  type SupervisorOptions,
  type SupervisorPlugin,
  type SupervisorState,
} from './supervisor.js'
