/**
 * Every failure of the bridge host has a class and a stable code. Codes are never reused; the
 * README's error table lists the same set (a test checks that they agree).
 */

/** Every stable code of this package. */
export const BRIDGE_HOST_ERROR_CODES = Object.freeze([
  'ENCLAVE_BRIDGE_HOST_INVALID_OPTION',
  'ENCLAVE_BRIDGE_HOST_HANDSHAKE_FAILED',
  'ENCLAVE_BRIDGE_HOST_TUNNEL_FAILED',
  'ENCLAVE_BRIDGE_HOST_LISTEN_FAILED',
  'ENCLAVE_BRIDGE_HOST_HEARTBEAT_TIMEOUT',
  'ENCLAVE_BRIDGE_HOST_ID_MISMATCH',
  'ENCLAVE_BRIDGE_HOST_CLOSING',
] as const)

export type BridgeHostErrorCode = (typeof BRIDGE_HOST_ERROR_CODES)[number]

export class BridgeHostError extends Error {
  readonly code: BridgeHostErrorCode
  constructor(code: BridgeHostErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BridgeHostError'
    this.code = code
  }
}

/** An option is out of range or of the wrong type; the message names it. */
export class InvalidOptionError extends BridgeHostError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_HOST_INVALID_OPTION', message, options)
    this.name = 'InvalidOptionError'
  }
}

/** Which handshake step failed. */
export type HandshakeStep = 'ack' | 'environment' | 'settings' | 'apply'

/**
 * One enclave's handshake failed (bad ACK, invalid JSON, a line over the limit, a peer that never
 * answered, settings naming a bad field, a tunnel port in use). The host stays up for the next one.
 */
export class HandshakeFailedError extends BridgeHostError {
  readonly step: HandshakeStep
  constructor(step: HandshakeStep, message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_HOST_HANDSHAKE_FAILED', `handshake failed at the ${step} step: ${message}`, options)
    this.name = 'HandshakeFailedError'
    this.step = step
  }
}

/** A tunnel the settings asked for could not start (e.g. its TCP port is in use). */
export class TunnelFailedError extends BridgeHostError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_HOST_TUNNEL_FAILED', message, options)
    this.name = 'TunnelFailedError'
  }
}

/** The host could not listen on its handshake or log port. */
export class ListenFailedError extends BridgeHostError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BRIDGE_HOST_LISTEN_FAILED', message, options)
    this.name = 'ListenFailedError'
  }
}

/** No valid heartbeat from the enclave within one watchdog interval. */
export class HeartbeatTimeoutError extends BridgeHostError {
  constructor(intervalMs: number) {
    super('ENCLAVE_BRIDGE_HOST_HEARTBEAT_TIMEOUT', `no heartbeat from the enclave within ${intervalMs} ms`)
    this.name = 'HeartbeatTimeoutError'
  }
}

/** A watchdog connection carried another enclave id than the handshake's. */
export class EnclaveIdMismatchError extends BridgeHostError {
  constructor(expected: string, received: string) {
    super('ENCLAVE_BRIDGE_HOST_ID_MISMATCH', `heartbeat for enclave ${received}, expected ${expected}`)
    this.name = 'EnclaveIdMismatchError'
  }
}

/** The host is closing (or closed): a handshake that reached this point is not applied. */
export class HostClosingError extends BridgeHostError {
  constructor(message = 'the bridge host is closing; the enclave must hand-shake with a new host') {
    super('ENCLAVE_BRIDGE_HOST_CLOSING', message)
    this.name = 'HostClosingError'
  }
}
