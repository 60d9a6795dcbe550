/**
 * Typed errors of @enclave/egress. Each has a stable `code` and the HTTP `status` the in-enclave
 * proxy answers with; the README's error table lists the same codes.
 */

export const EGRESS_ERROR_CODES = Object.freeze([
  'ENCLAVE_EGRESS_INVALID_OPTIONS',
  'ENCLAVE_EGRESS_INVALID_POLICY',
  'ENCLAVE_EGRESS_INVALID_HOST',
  'ENCLAVE_EGRESS_REFUSED',
  'ENCLAVE_EGRESS_RESOLVE_FAILED',
  'ENCLAVE_EGRESS_DIAL_FAILED',
  'ENCLAVE_EGRESS_TIMEOUT',
  'ENCLAVE_EGRESS_MALFORMED_MESSAGE',
  'ENCLAVE_EGRESS_HOST_UNREACHABLE',
] as const)

export type EgressErrorCode = (typeof EGRESS_ERROR_CODES)[number]

/** Base class: `instanceof EgressError` catches every error this package raises. */
export class EgressError extends Error {
  readonly code: EgressErrorCode
  /** The HTTP status the proxy answers with when this error ends a request. */
  readonly status: number
  constructor(code: EgressErrorCode, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'EgressError'
    this.code = code
    this.status = status
  }
}

/** An option is missing, of the wrong type or out of range; the message names it. */
export class InvalidOptionsError extends EgressError {
  constructor(message: string) {
    super('ENCLAVE_EGRESS_INVALID_OPTIONS', 500, message)
    this.name = 'InvalidOptionsError'
  }
}

/** An `egress.allow`/`egress.deny` entry is neither an IP, a CIDR nor a valid domain pattern. */
export class InvalidPolicyError extends EgressError {
  readonly entry: string
  constructor(entry: string, why: string) {
    super(
      'ENCLAVE_EGRESS_INVALID_POLICY',
      500,
      `invalid egress policy entry ${JSON.stringify(entry)}: ${why}; use a host name pattern (example.com, *.example.com, **.example.com), an IP address or a CIDR`,
    )
    this.name = 'InvalidPolicyError'
    this.entry = entry
  }
}

/** The requested host or port is not something the proxy can dial (bad syntax, zone id, port 0). */
export class InvalidHostError extends EgressError {
  constructor(host: string, why: string) {
    super('ENCLAVE_EGRESS_INVALID_HOST', 400, `invalid destination ${JSON.stringify(host)}: ${why}`)
    this.name = 'InvalidHostError'
  }
}

/** The egress policy refuses the destination; `rule` names the entry (or default) that refused. */
export class RefusedError extends EgressError {
  readonly rule: string
  constructor(destination: string, rule: string) {
    super(
      'ENCLAVE_EGRESS_REFUSED',
      403,
      `egress to ${destination} refused by ${rule}; add an allow entry to the manifest's egress.allow if this is intended`,
    )
    this.name = 'RefusedError'
    this.rule = rule
  }
}

/** The host could not resolve the name. */
export class ResolveFailedError extends EgressError {
  constructor(host: string, options?: { cause?: unknown }) {
    super(
      'ENCLAVE_EGRESS_RESOLVE_FAILED',
      502,
      `cannot resolve ${host}: ${describe(options?.cause)}`,
      options,
    )
    this.name = 'ResolveFailedError'
  }
}

/** The host could not connect to the destination. */
export class DialFailedError extends EgressError {
  constructor(destination: string, options?: { cause?: unknown }) {
    super(
      'ENCLAVE_EGRESS_DIAL_FAILED',
      502,
      `cannot connect to ${destination}: ${describe(options?.cause)}`,
      options,
    )
    this.name = 'DialFailedError'
  }
}

/** Resolving, dialling or waiting for the host half took longer than allowed. */
export class TimeoutError extends EgressError {
  constructor(what: string, ms: number) {
    super('ENCLAVE_EGRESS_TIMEOUT', 504, `${what} timed out after ${ms} ms`)
    this.name = 'TimeoutError'
  }
}

/** A tunnel request or reply on vsock 17002 is not a valid message. */
export class MalformedMessageError extends EgressError {
  constructor(why: string) {
    super('ENCLAVE_EGRESS_MALFORMED_MESSAGE', 502, `malformed egress message: ${why}`)
    this.name = 'MalformedMessageError'
  }
}

/** The in-enclave proxy cannot reach the host half (not started, wrong port, closed early). */
export class HostUnreachableError extends EgressError {
  constructor(address: string, options?: { cause?: unknown }) {
    super(
      'ENCLAVE_EGRESS_HOST_UNREACHABLE',
      502,
      `cannot reach the egress host proxy at ${address}: ${describe(options?.cause)}; is the host half running?`,
      options,
    )
    this.name = 'HostUnreachableError'
  }
}

export const EGRESS_ERROR_CLASSES = Object.freeze([
  InvalidOptionsError,
  InvalidPolicyError,
  InvalidHostError,
  RefusedError,
  ResolveFailedError,
  DialFailedError,
  TimeoutError,
  MalformedMessageError,
  HostUnreachableError,
])

function describe(cause: unknown): string {
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message
  return cause === undefined ? 'unknown error' : String(cause)
}
