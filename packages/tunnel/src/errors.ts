/**
 * Typed errors of @enclave/tunnel. Every failure a caller can act on has its own class and a
 * stable `code`; codes are never reused. The README's error table lists the same codes.
 */

/** Every code this package uses; the README's error table lists the same ones. */
export const TUNNEL_ERROR_CODES = Object.freeze([
  'ENCLAVE_TUNNEL_INVALID_OPTIONS',
  'ENCLAVE_TUNNEL_LISTEN_FAILED',
  'ENCLAVE_TUNNEL_CONNECT_FAILED',
  'ENCLAVE_TUNNEL_CONNECT_TIMEOUT',
  'ENCLAVE_TUNNEL_RESOLVE_FAILED',
  'ENCLAVE_TUNNEL_RESOLVE_TIMEOUT',
  'ENCLAVE_TUNNEL_IDLE_TIMEOUT',
  'ENCLAVE_TUNNEL_MAX_CONNECTIONS',
  'ENCLAVE_TUNNEL_SOCKET_ERROR',
  'ENCLAVE_TUNNEL_PREMATURE_CLOSE',
  'ENCLAVE_TUNNEL_PREFIX_TOO_LARGE',
  'ENCLAVE_TUNNEL_CLOSED',
] as const)

export type TunnelErrorCode = (typeof TUNNEL_ERROR_CODES)[number]

/** Base class: `instanceof TunnelError` catches every error this package raises. */
export class TunnelError extends Error {
  readonly code: TunnelErrorCode
  constructor(code: TunnelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TunnelError'
    this.code = code
  }
}

/** An option is missing, of the wrong type or out of range; the message names it and the range. */
export class InvalidOptionsError extends TunnelError {
  constructor(message: string) {
    super('ENCLAVE_TUNNEL_INVALID_OPTIONS', message)
    this.name = 'InvalidOptionsError'
  }
}

/** The tunnel could not listen on its `from` address (in use, no permission, no vsock...). */
export class ListenFailedError extends TunnelError {
  constructor(address: string, options?: { cause?: unknown }) {
    super(
      'ENCLAVE_TUNNEL_LISTEN_FAILED',
      `cannot listen on ${address}: ${describeCause(options?.cause)}; pick a free address or fix its permissions`,
      options,
    )
    this.name = 'ListenFailedError'
  }
}

/** Dialling the target failed (refused, unreachable, no such socket file...). */
export class ConnectFailedError extends TunnelError {
  constructor(address: string, options?: { cause?: unknown }) {
    super(
      'ENCLAVE_TUNNEL_CONNECT_FAILED',
      `cannot connect to ${address}: ${describeCause(options?.cause)}; check that the target is up`,
      options,
    )
    this.name = 'ConnectFailedError'
  }
}

/** The target did not accept the connection within `connectTimeoutMs`. */
export class ConnectTimeoutError extends TunnelError {
  constructor(address: string, timeoutMs: number) {
    super(
      'ENCLAVE_TUNNEL_CONNECT_TIMEOUT',
      `connecting to ${address} took longer than ${timeoutMs} ms (option connectTimeoutMs)`,
    )
    this.name = 'ConnectTimeoutError'
  }
}

/** The resolver threw, for example because the inbound peer sent a malformed header. */
export class ResolveFailedError extends TunnelError {
  constructor(options?: { cause?: unknown }) {
    super(
      'ENCLAVE_TUNNEL_RESOLVE_FAILED',
      `cannot choose a target for the connection: ${describeCause(options?.cause)}`,
      options,
    )
    this.name = 'ResolveFailedError'
  }
}

/** The resolver did not finish within `resolveTimeoutMs` (a peer that never sends its header). */
export class ResolveTimeoutError extends TunnelError {
  constructor(timeoutMs: number) {
    super(
      'ENCLAVE_TUNNEL_RESOLVE_TIMEOUT',
      `the resolver took longer than ${timeoutMs} ms (option resolveTimeoutMs)`,
    )
    this.name = 'ResolveTimeoutError'
  }
}

/** No byte moved in either direction for `idleTimeoutMs`. */
export class IdleTimeoutError extends TunnelError {
  constructor(timeoutMs: number) {
    super(
      'ENCLAVE_TUNNEL_IDLE_TIMEOUT',
      `no data moved for ${timeoutMs} ms (option idleTimeoutMs); the connection was closed`,
    )
    this.name = 'IdleTimeoutError'
  }
}

/** The tunnel already carried `maxConnections`; the new connection was closed at once. */
export class MaxConnectionsError extends TunnelError {
  constructor(limit: number) {
    super(
      'ENCLAVE_TUNNEL_MAX_CONNECTIONS',
      `refused a connection: ${limit} are active (option maxConnections)`,
    )
    this.name = 'MaxConnectionsError'
  }
}

/** A socket of the pair failed mid-stream (reset by the peer, broken pipe...). */
export class SocketError extends TunnelError {
  readonly side: 'inbound' | 'outbound'
  constructor(side: 'inbound' | 'outbound', options?: { cause?: unknown }) {
    super('ENCLAVE_TUNNEL_SOCKET_ERROR', `${side} socket failed: ${describeCause(options?.cause)}`, options)
    this.name = 'SocketError'
    this.side = side
  }
}

/** The peer closed before a prefix (such as a transparent header) was complete. */
export class PrematureCloseError extends TunnelError {
  constructor(received: number) {
    super(
      'ENCLAVE_TUNNEL_PREMATURE_CLOSE',
      `the peer closed the connection after ${received} bytes, before its header was complete`,
    )
    this.name = 'PrematureCloseError'
  }
}

/** A prefix parser consumed more than `maxBytes` without finishing. */
export class PrefixTooLargeError extends TunnelError {
  constructor(maxBytes: number) {
    super(
      'ENCLAVE_TUNNEL_PREFIX_TOO_LARGE',
      `the peer sent more than ${maxBytes} bytes without completing its header (option maxBytes)`,
    )
    this.name = 'PrefixTooLargeError'
  }
}

/** The connection was cut because the tunnel closed (drain timeout) or the call was aborted. */
export class TunnelClosedError extends TunnelError {
  constructor(message = 'the tunnel is closing; the connection was cut') {
    super('ENCLAVE_TUNNEL_CLOSED', message)
    this.name = 'TunnelClosedError'
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code
    return code && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message
  }
  return cause === undefined ? 'unknown cause' : String(cause)
}
