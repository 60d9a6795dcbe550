/**
 * Every failure of the enclave side of the bridge has a class and a stable code. Codes are never
 * reused; the README's error table lists the same set (a test checks that they agree).
 */

/** Every stable code of this package. */
export const BRIDGE_ENCLAVE_ERROR_CODES = Object.freeze([
  'ENCLAVE_BRIDGE_ENCLAVE_INVALID_OPTION',
  'ENCLAVE_BRIDGE_ENCLAVE_INVALID_SETTINGS',
  'ENCLAVE_BRIDGE_ENCLAVE_INVALID_ENV',
  'ENCLAVE_BRIDGE_ENCLAVE_HANDSHAKE_FAILED',
  'ENCLAVE_BRIDGE_ENCLAVE_MISSING_ACK',
  'ENCLAVE_BRIDGE_ENCLAVE_HEARTBEAT_TIMEOUT',
  'ENCLAVE_BRIDGE_ENCLAVE_ID_MISMATCH',
  'ENCLAVE_BRIDGE_ENCLAVE_DIAL_FAILED',
  'ENCLAVE_BRIDGE_ENCLAVE_DESTINATION_DENIED',
  'ENCLAVE_BRIDGE_ENCLAVE_BAD_PROXY_HEADER',
  'ENCLAVE_BRIDGE_ENCLAVE_ABORTED',
] as const)

export type BridgeEnclaveErrorCode = (typeof BRIDGE_ENCLAVE_ERROR_CODES)[number]

export class BridgeEnclaveError extends Error {
  readonly code: BridgeEnclaveErrorCode
  constructor(code: BridgeEnclaveErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BridgeEnclaveError'
    this.code = code
  }
}

/** An option passed to a function of this package is out of range or of the wrong type. */
export class InvalidOptionError extends BridgeEnclaveError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_ENCLAVE_INVALID_OPTION', message, options)
    this.name = 'InvalidOptionError'
  }
}

/** BridgeSettings failed validation; `field` is the JSON path of the first bad field. */
export class InvalidSettingsError extends BridgeEnclaveError {
  readonly field: string
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_ENCLAVE_INVALID_SETTINGS', `invalid bridge settings: ${field}: ${message}`, options)
    this.name = 'InvalidSettingsError'
    this.field = field
  }
}

/** One or more forwarded environment variables are missing or malformed; `problems` lists each. */
export class InvalidEnvError extends BridgeEnclaveError {
  readonly problems: readonly { variable: string; message: string }[]
  constructor(problems: readonly { variable: string; message: string }[]) {
    super(
      'ENCLAVE_BRIDGE_ENCLAVE_INVALID_ENV',
      `invalid environment: ${problems.map((p) => `${p.variable}: ${p.message}`).join('; ')}`,
    )
    this.name = 'InvalidEnvError'
    this.problems = problems
  }
}

/** The handshake with the bridge host failed (closed connection, malformed environment line...). */
export class HandshakeFailedError extends BridgeEnclaveError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_ENCLAVE_HANDSHAKE_FAILED', message, options)
    this.name = 'HandshakeFailedError'
  }
}

/** The host did not answer the settings with an ACK: it rejected them (see its log) or closed. */
export class MissingAckError extends BridgeEnclaveError {
  constructor(message = 'missing ACK from the bridge host', options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_ENCLAVE_MISSING_ACK', message, options)
    this.name = 'MissingAckError'
  }
}

/** No valid heartbeat arrived from the host within one watchdog interval. */
export class HeartbeatTimeoutError extends BridgeEnclaveError {
  constructor(intervalMs: number) {
    super(
      'ENCLAVE_BRIDGE_ENCLAVE_HEARTBEAT_TIMEOUT',
      `no heartbeat from the bridge host within ${intervalMs} ms`,
    )
    this.name = 'HeartbeatTimeoutError'
  }
}

/** A heartbeat carried another enclave id than ours. */
export class EnclaveIdMismatchError extends BridgeEnclaveError {
  constructor(expected: string, received: string) {
    super('ENCLAVE_BRIDGE_ENCLAVE_ID_MISMATCH', `heartbeat for enclave ${received}, expected ${expected}`)
    this.name = 'EnclaveIdMismatchError'
  }
}

/**
 * A client-tunnel dial failed: the host could not connect to the target (`reason` is the host's
 * error code, e.g. ECONNREFUSED), or (a Go host) closed the tunnel without an answer.
 */
export class DialFailedError extends BridgeEnclaveError {
  readonly target: string
  readonly reason: string
  constructor(target: string, reason: string, detail: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_ENCLAVE_DIAL_FAILED', `client tunnel to ${target} failed: ${detail}`, options)
    this.name = 'DialFailedError'
    this.target = target
    this.reason = reason
  }
}

/** The host's egress allowlist does not allow this destination. */
export class DestinationDeniedError extends BridgeEnclaveError {
  readonly target: string
  constructor(target: string, detail: string) {
    super(
      'ENCLAVE_BRIDGE_ENCLAVE_DESTINATION_DENIED',
      `client tunnel to ${target} refused by the host: ${detail} (add it to the host's --allow-destination list)`,
    )
    this.name = 'DestinationDeniedError'
    this.target = target
  }
}

/** A connection's PROXY protocol v1 header is malformed, over-long or missing. */
export class ProxyHeaderError extends BridgeEnclaveError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_ENCLAVE_BAD_PROXY_HEADER', `bad PROXY header: ${message}`, options)
    this.name = 'ProxyHeaderError'
  }
}

/** The caller's AbortSignal fired. */
export class AbortedError extends BridgeEnclaveError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_ENCLAVE_ABORTED', `${what} was aborted`, options)
    this.name = 'AbortedError'
  }
}
