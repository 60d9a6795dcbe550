/**
 * Typed errors of @enclave/vsock-transport. Every failure the package reports is a TransportError
 * with a stable `code`; when a system call failed, `systemCode` holds its errno name
 * (`ECONNREFUSED`, `ENODEV`, ...) and `cause` the original error.
 */

export type TransportErrorCode =
  | 'ENCLAVE_VSOCK_INVALID_ADDRESS'
  | 'ENCLAVE_VSOCK_INVALID_OPTION'
  | 'ENCLAVE_VSOCK_CONNECTION_REFUSED'
  | 'ENCLAVE_VSOCK_UNREACHABLE'
  | 'ENCLAVE_VSOCK_CONNECT_TIMEOUT'
  | 'ENCLAVE_VSOCK_CONNECT_FAILED'
  | 'ENCLAVE_VSOCK_ABORTED'
  | 'ENCLAVE_VSOCK_ADDRESS_IN_USE'
  | 'ENCLAVE_VSOCK_LISTEN_FAILED'
  | 'ENCLAVE_VSOCK_HANDSHAKE_FAILED'
  | 'ENCLAVE_VSOCK_UNAVAILABLE'
  | 'ENCLAVE_VSOCK_NO_ORIGINAL_DESTINATION'
  | 'ENCLAVE_VSOCK_UNSUPPORTED_SOCKET'
  | 'ENCLAVE_VSOCK_SYSTEM_ERROR'

export interface TransportErrorOptions {
  cause?: unknown
  /** errno name of the failed system call, e.g. `ECONNREFUSED`. */
  systemCode?: string | undefined
  /** The address (URI form) the operation was about. */
  address?: string | undefined
}

/** Base class of every error this package throws or rejects with. */
export class TransportError extends Error {
  override name = 'TransportError'
  readonly code: TransportErrorCode
  readonly systemCode: string | undefined
  readonly address: string | undefined

  constructor(code: TransportErrorCode, message: string, options: TransportErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.systemCode = options.systemCode
    this.address = options.address
  }
}

/** The address string or object is malformed; the message says which part and shows valid forms. */
export class InvalidAddressError extends TransportError {
  override name = 'InvalidAddressError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_INVALID_ADDRESS', message, options)
  }
}

/** An option is out of range or of the wrong type; the message names the option and its valid range. */
export class InvalidOptionError extends TransportError {
  override name = 'InvalidOptionError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_INVALID_OPTION', message, options)
  }
}

/** Nothing listens at the address (ECONNREFUSED, or ENOENT for a missing Unix socket file). */
export class ConnectionRefusedError extends TransportError {
  override name = 'ConnectionRefusedError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_CONNECTION_REFUSED', message, options)
  }
}

/** The peer cannot be reached (ENODEV for a vsock CID with no transport, EHOSTUNREACH, ENETUNREACH). */
export class UnreachableError extends TransportError {
  override name = 'UnreachableError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_UNREACHABLE', message, options)
  }
}

/** The connection (and, for hybrid vsock, its handshake) did not complete within `timeoutMs`. */
export class ConnectTimeoutError extends TransportError {
  override name = 'ConnectTimeoutError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_CONNECT_TIMEOUT', message, options)
  }
}

/** Any other failure to connect; `systemCode` says which. */
export class ConnectError extends TransportError {
  override name = 'ConnectError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_CONNECT_FAILED', message, options)
  }
}

/** The operation was cancelled through its AbortSignal. */
export class AbortError extends TransportError {
  override name = 'AbortError'
  constructor(message = 'the operation was aborted', options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_ABORTED', message, options)
  }
}

/** Something already listens at the address (EADDRINUSE). */
export class AddressInUseError extends TransportError {
  override name = 'AddressInUseError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_ADDRESS_IN_USE', message, options)
  }
}

/** Any other failure to bind or listen (EACCES, EADDRNOTAVAIL, ...); `systemCode` says which. */
export class ListenError extends TransportError {
  override name = 'ListenError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_LISTEN_FAILED', message, options)
  }
}

/** The hybrid-vsock multiplexer did not answer `OK <n>` to `CONNECT <port>`. */
export class HandshakeError extends TransportError {
  override name = 'HandshakeError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_HANDSHAKE_FAILED', message, options)
  }
}

/** AF_VSOCK cannot be used here: the addon did not load, or the kernel has no vsock. */
export class VsockUnavailableError extends TransportError {
  override name = 'VsockUnavailableError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_UNAVAILABLE', message, options)
  }
}

/** The socket has no original destination (not redirected by NAT, or conntrack not loaded). */
export class NoOriginalDestinationError extends TransportError {
  override name = 'NoOriginalDestinationError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_NO_ORIGINAL_DESTINATION', message, options)
  }
}

/** The socket given is not of a kind the call supports (no handle, wrong family, already closed). */
export class UnsupportedSocketError extends TransportError {
  override name = 'UnsupportedSocketError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_UNSUPPORTED_SOCKET', message, options)
  }
}

/** A system call failed in a way no other class covers; `systemCode` says which. */
export class SystemError extends TransportError {
  override name = 'SystemError'
  constructor(message: string, options?: TransportErrorOptions) {
    super('ENCLAVE_VSOCK_SYSTEM_ERROR', message, options)
  }
}

/** Every class, by code: the README table and a test check against this list. */
export const ERROR_CLASSES: Readonly<Record<TransportErrorCode, new (message: string) => TransportError>> =
  Object.freeze({
    ENCLAVE_VSOCK_INVALID_ADDRESS: InvalidAddressError,
    ENCLAVE_VSOCK_INVALID_OPTION: InvalidOptionError,
    ENCLAVE_VSOCK_CONNECTION_REFUSED: ConnectionRefusedError,
    ENCLAVE_VSOCK_UNREACHABLE: UnreachableError,
    ENCLAVE_VSOCK_CONNECT_TIMEOUT: ConnectTimeoutError,
    ENCLAVE_VSOCK_CONNECT_FAILED: ConnectError,
    ENCLAVE_VSOCK_ABORTED: AbortError,
    ENCLAVE_VSOCK_ADDRESS_IN_USE: AddressInUseError,
    ENCLAVE_VSOCK_LISTEN_FAILED: ListenError,
    ENCLAVE_VSOCK_HANDSHAKE_FAILED: HandshakeError,
    ENCLAVE_VSOCK_UNAVAILABLE: VsockUnavailableError,
    ENCLAVE_VSOCK_NO_ORIGINAL_DESTINATION: NoOriginalDestinationError,
    ENCLAVE_VSOCK_UNSUPPORTED_SOCKET: UnsupportedSocketError,
    ENCLAVE_VSOCK_SYSTEM_ERROR: SystemError,
  })

/** errno name of a Node system error, if it is one. */
export function systemCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined
}

/** Maps a failed connect to the typed error for its errno. */
export function connectErrorFrom(err: unknown, address: string, detail = ''): TransportError {
  if (err instanceof TransportError) return err
  const systemCode = systemCodeOf(err)
  const where = detail ? `${address} (${detail})` : address
  const options = { cause: err, systemCode, address }
  switch (systemCode) {
    case 'ECONNREFUSED':
    case 'ECONNRESET': // vsock answers a connect to a port nobody listens on with a reset
    case 'ENOENT':
      return new ConnectionRefusedError(`nothing listens on ${where} (${systemCode})`, options)
    case 'ENODEV':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new UnreachableError(`cannot reach ${where} (${systemCode})`, options)
    case 'ETIMEDOUT':
      return new ConnectTimeoutError(`connect to ${where} timed out (${systemCode})`, options)
    default:
      return new ConnectError(
        `connect to ${where} failed: ${(err as Error)?.message ?? String(err)}`,
        options,
      )
  }
}

/** Maps a failed bind/listen to the typed error for its errno. */
export function listenErrorFrom(err: unknown, address: string, detail = ''): TransportError {
  if (err instanceof TransportError) return err
  const systemCode = systemCodeOf(err)
  const where = detail ? `${address} (${detail})` : address
  const options = { cause: err, systemCode, address }
  if (systemCode === 'EADDRINUSE') {
    return new AddressInUseError(`something already listens on ${where} (EADDRINUSE)`, options)
  }
  return new ListenError(`cannot listen on ${where}: ${(err as Error)?.message ?? String(err)}`, options)
}
