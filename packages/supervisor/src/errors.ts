/**
 * Typed errors of @enclave/supervisor. Every failure a caller can act on has its own class and a
 * stable `code`; codes are never reused. The README's error table lists the same codes.
 */

export const SUPERVISOR_ERROR_CODES = Object.freeze([
  'ENCLAVE_SUPERVISOR_INVALID_OPTIONS',
  'ENCLAVE_SUPERVISOR_CONFIG_INVALID',
  'ENCLAVE_SUPERVISOR_CONFIG_UNREADABLE',
  'ENCLAVE_SUPERVISOR_SERVICE_GRAPH',
  'ENCLAVE_SUPERVISOR_SPAWN_FAILED',
  'ENCLAVE_SUPERVISOR_STARTUP_FAILED',
  'ENCLAVE_SUPERVISOR_ADDON_UNAVAILABLE',
  'ENCLAVE_SUPERVISOR_STATUS_INVALID',
  'ENCLAVE_SUPERVISOR_HEARTBEAT_FAILED',
  'ENCLAVE_SUPERVISOR_STATE',
  'ENCLAVE_SUPERVISOR_NITRO_CLI',
  'ENCLAVE_SUPERVISOR_LAUNCH_FAILED',
  'ENCLAVE_SUPERVISOR_PCR_MISMATCH',
  'ENCLAVE_SUPERVISOR_CONTROL',
] as const)

export type SupervisorErrorCode = (typeof SUPERVISOR_ERROR_CODES)[number]

/** Base class: `instanceof SupervisorError` catches every error this package raises. */
export class SupervisorError extends Error {
  readonly code: SupervisorErrorCode
  constructor(code: SupervisorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SupervisorError'
    this.code = code
  }
}

/** An option is missing, of the wrong type or out of range; the message names it. */
export class InvalidOptionsError extends SupervisorError {
  constructor(message: string) {
    super('ENCLAVE_SUPERVISOR_INVALID_OPTIONS', message)
    this.name = 'InvalidOptionsError'
  }
}

/** odyn.yaml (services, user, heartbeat) is not valid; the message lists every problem. */
export class ConfigInvalidError extends SupervisorError {
  readonly issues: readonly string[]
  constructor(file: string, issues: readonly string[]) {
    super('ENCLAVE_SUPERVISOR_CONFIG_INVALID', `invalid configuration in ${file}:\n  ${issues.join('\n  ')}`)
    this.name = 'ConfigInvalidError'
    this.issues = issues
  }
}

/** A configuration file exists but cannot be read or is not YAML. */
export class ConfigUnreadableError extends SupervisorError {
  constructor(file: string, options?: { cause?: unknown }) {
    super(
      'ENCLAVE_SUPERVISOR_CONFIG_UNREADABLE',
      `cannot read ${file}: ${causeText(options?.cause)}; check the path given with --config-dir`,
      options,
    )
    this.name = 'ConfigUnreadableError'
  }
}

/** Service dependencies name an unknown service or form a cycle. */
export class ServiceGraphError extends SupervisorError {
  constructor(message: string) {
    super('ENCLAVE_SUPERVISOR_SERVICE_GRAPH', message)
    this.name = 'ServiceGraphError'
  }
}

/** A process (the app or a service) could not be started: missing executable, no permission... */
export class SpawnFailedError extends SupervisorError {
  constructor(what: string, command: readonly string[], options?: { cause?: unknown }) {
    super(
      'ENCLAVE_SUPERVISOR_SPAWN_FAILED',
      `cannot start ${what} (${JSON.stringify(command)}): ${causeText(options?.cause)}; check the command and its permissions`,
      options,
    )
    this.name = 'SpawnFailedError'
  }
}

/** A start-up step (loopback, status/log server, a plug-in service) failed before the app ran. */
export class StartupFailedError extends SupervisorError {
  readonly step: string
  constructor(step: string, options?: { cause?: unknown }) {
    super(
      'ENCLAVE_SUPERVISOR_STARTUP_FAILED',
      `start-up step "${step}" failed: ${causeText(options?.cause)}`,
      options,
    )
    this.name = 'StartupFailedError'
    this.step = step
  }
}

/** The reaper addon is not built or cannot load; orphans are then not reaped (only direct children). */
export class AddonUnavailableError extends SupervisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_SUPERVISOR_ADDON_UNAVAILABLE', message, options)
    this.name = 'AddonUnavailableError'
  }
}

/** A status line from the enclave is not one of running / exited / signaled / fatal. */
export class StatusInvalidError extends SupervisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_SUPERVISOR_STATUS_INVALID', message, options)
    this.name = 'StatusInvalidError'
  }
}

/** The Nitro boot heartbeat (0xB7 to the parent on port 9000) was not answered with 0xB7. */
export class HeartbeatFailedError extends SupervisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_SUPERVISOR_HEARTBEAT_FAILED', message, options)
    this.name = 'HeartbeatFailedError'
  }
}

/** A method was called in the wrong lifecycle state (start twice, start after stop). */
export class StateError extends SupervisorError {
  constructor(message: string) {
    super('ENCLAVE_SUPERVISOR_STATE', message)
    this.name = 'StateError'
  }
}

/** A nitro-cli command failed or answered unexpectedly; the message carries its stderr and error log path. */
export class NitroCliError extends SupervisorError {
  readonly command: string
  readonly stderr: string
  /** The file named in nitro-cli's "support ticket" line, if any. */
  readonly errorLog: string | undefined
  constructor(command: string, stderr: string, options?: { cause?: unknown }) {
    const errorLog = /error log found at "?([^"\s]+)"?/.exec(stderr)?.[1]
    super(
      'ENCLAVE_SUPERVISOR_NITRO_CLI',
      `nitro-cli ${command} failed: ${stderr.trim().slice(0, 2000) || causeText(options?.cause)}${errorLog ? ` (details: ${errorLog})` : ''}`,
      options,
    )
    this.name = 'NitroCliError'
    this.command = command
    this.stderr = stderr
    this.errorLog = errorLog
  }
}

/** The simulator could not start odyn (bad command, no temp dir...). */
export class LaunchFailedError extends SupervisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_SUPERVISOR_LAUNCH_FAILED', message, options)
    this.name = 'LaunchFailedError'
  }
}

/** The EIF's measurements differ from the expected ones (--expect-pcrs); nothing was started. */
export class PcrMismatchError extends SupervisorError {
  readonly mismatches: readonly { pcr: string; expected: string; actual: string | undefined }[]
  constructor(mismatches: readonly { pcr: string; expected: string; actual: string | undefined }[]) {
    super(
      'ENCLAVE_SUPERVISOR_PCR_MISMATCH',
      `the EIF's measurements differ from the expected ones: ${mismatches
        .map((m) => `${m.pcr} is ${m.actual ?? 'absent'}, expected ${m.expected}`)
        .join('; ')}; rebuild the EIF or update the pinned values`,
    )
    this.name = 'PcrMismatchError'
    this.mismatches = mismatches
  }
}

/** The control interface refused, failed to authenticate, or got a forged/replayed message. */
export class ControlError extends SupervisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_SUPERVISOR_CONTROL', message, options)
    this.name = 'ControlError'
  }
}

export const ERROR_CLASSES = Object.freeze({
  ENCLAVE_SUPERVISOR_INVALID_OPTIONS: InvalidOptionsError,
  ENCLAVE_SUPERVISOR_CONFIG_INVALID: ConfigInvalidError,
  ENCLAVE_SUPERVISOR_CONFIG_UNREADABLE: ConfigUnreadableError,
  ENCLAVE_SUPERVISOR_SERVICE_GRAPH: ServiceGraphError,
  ENCLAVE_SUPERVISOR_SPAWN_FAILED: SpawnFailedError,
  ENCLAVE_SUPERVISOR_STARTUP_FAILED: StartupFailedError,
  ENCLAVE_SUPERVISOR_ADDON_UNAVAILABLE: AddonUnavailableError,
  ENCLAVE_SUPERVISOR_STATUS_INVALID: StatusInvalidError,
  ENCLAVE_SUPERVISOR_HEARTBEAT_FAILED: HeartbeatFailedError,
  ENCLAVE_SUPERVISOR_STATE: StateError,
  ENCLAVE_SUPERVISOR_NITRO_CLI: NitroCliError,
  ENCLAVE_SUPERVISOR_LAUNCH_FAILED: LaunchFailedError,
  ENCLAVE_SUPERVISOR_PCR_MISMATCH: PcrMismatchError,
  ENCLAVE_SUPERVISOR_CONTROL: ControlError,
} satisfies Record<SupervisorErrorCode, unknown>)

function causeText(cause: unknown): string {
  if (cause instanceof Error) return cause.message
  return cause === undefined ? 'unknown error' : String(cause)
}
