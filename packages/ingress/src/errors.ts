/**
 * Typed errors of @enclave/ingress, each with a stable `code`; the README's error table lists the
 * same codes.
 */

export const INGRESS_ERROR_CODES = Object.freeze([
  'ENCLAVE_INGRESS_INVALID_OPTIONS',
  'ENCLAVE_INGRESS_TLS_FILES',
  'ENCLAVE_INGRESS_MALFORMED_PROXY_HEADER',
] as const)

export type IngressErrorCode = (typeof INGRESS_ERROR_CODES)[number]

/** Base class: `instanceof IngressError` catches every error this package raises. */
export class IngressError extends Error {
  readonly code: IngressErrorCode
  constructor(code: IngressErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'IngressError'
    this.code = code
  }
}

/** An option is missing, of the wrong type or out of range; the message names it. */
export class InvalidOptionsError extends IngressError {
  constructor(message: string) {
    super('ENCLAVE_INGRESS_INVALID_OPTIONS', message)
    this.name = 'InvalidOptionsError'
  }
}

/** A TLS certificate, key or client CA file cannot be read or used. */
export class TlsFilesError extends IngressError {
  constructor(what: string, path: string, options?: { cause?: unknown }) {
    const cause = options?.cause as NodeJS.ErrnoException | undefined
    super(
      'ENCLAVE_INGRESS_TLS_FILES',
      `cannot use the ingress TLS ${what} ${path}: ${cause?.code ?? cause?.message ?? 'invalid'}; check tls.cert_file, tls.key_file and tls.client_ca_file in the manifest`,
      options,
    )
    this.name = 'TlsFilesError'
  }
}

/** A PROXY protocol v2 header is malformed (bad signature, version, family or length). */
export class MalformedProxyHeaderError extends IngressError {
  constructor(why: string) {
    super('ENCLAVE_INGRESS_MALFORMED_PROXY_HEADER', `malformed PROXY protocol v2 header: ${why}`)
    this.name = 'MalformedProxyHeaderError'
  }
}

export const INGRESS_ERROR_CLASSES = Object.freeze([
  InvalidOptionsError,
  TlsFilesError,
  MalformedProxyHeaderError,
])
