/**
 * Every failure of @enclave/enclave-api has a stable `code`. Over HTTP the same code is the
 * `code` field of the JSON error body, so clients switch on it, never on the message.
 */

export type EnclaveApiErrorCode =
  | 'ENCLAVE_API_INVALID_OPTION'
  | 'ENCLAVE_API_NOT_FOUND'
  | 'ENCLAVE_API_METHOD_NOT_ALLOWED'
  | 'ENCLAVE_API_BAD_REQUEST'
  | 'ENCLAVE_API_BODY_TOO_LARGE'
  | 'ENCLAVE_API_REPLAYED_NONCE'
  | 'ENCLAVE_API_DECRYPT_FAILED'
  | 'ENCLAVE_API_NSM_FAILED'

export class EnclaveApiError extends Error {
  readonly code: EnclaveApiErrorCode
  /** The HTTP status the server answers with. */
  readonly status: number
  constructor(code: EnclaveApiErrorCode, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'EnclaveApiError'
    this.code = code
    this.status = status
  }
}

/** An option given to createEnclaveApiServer is missing or out of range. */
export class InvalidOptionError extends EnclaveApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_API_INVALID_OPTION', 500, message, options)
    this.name = 'InvalidOptionError'
  }
}

/** No endpoint at this path (404). */
export class NotFoundError extends EnclaveApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_API_NOT_FOUND', 404, message, options)
    this.name = 'NotFoundError'
  }
}

/** The endpoint exists but not for this method (405). */
export class MethodNotAllowedError extends EnclaveApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_API_METHOD_NOT_ALLOWED', 405, message, options)
    this.name = 'MethodNotAllowedError'
  }
}

/** The body is not JSON, or a field is missing, mistyped or out of range (400). */
export class BadRequestError extends EnclaveApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_API_BAD_REQUEST', 400, message, options)
    this.name = 'BadRequestError'
  }
}

/** The body exceeds maxBodyBytes (413). */
export class BodyTooLargeError extends EnclaveApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_API_BODY_TOO_LARGE', 413, message, options)
    this.name = 'BodyTooLargeError'
  }
}

/** This (client key, nonce) pair was already used (400, as the Sparsity API answers). */
export class ReplayedNonceError extends EnclaveApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_API_REPLAYED_NONCE', 400, message, options)
    this.name = 'ReplayedNonceError'
  }
}

/** AES-256-GCM authentication failed: wrong key, nonce or damaged data (400). */
export class DecryptFailedError extends EnclaveApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_API_DECRYPT_FAILED', 400, message, options)
    this.name = 'DecryptFailedError'
  }
}

/** The NSM refused or failed a request (502). */
export class NsmFailedError extends EnclaveApiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_API_NSM_FAILED', 502, message, options)
    this.name = 'NsmFailedError'
  }
}

/** Code → class, in the order of the README's error table. */
export const ENCLAVE_API_ERROR_CLASSES = Object.freeze({
  ENCLAVE_API_INVALID_OPTION: InvalidOptionError,
  ENCLAVE_API_NOT_FOUND: NotFoundError,
  ENCLAVE_API_METHOD_NOT_ALLOWED: MethodNotAllowedError,
  ENCLAVE_API_BAD_REQUEST: BadRequestError,
  ENCLAVE_API_BODY_TOO_LARGE: BodyTooLargeError,
  ENCLAVE_API_REPLAYED_NONCE: ReplayedNonceError,
  ENCLAVE_API_DECRYPT_FAILED: DecryptFailedError,
  ENCLAVE_API_NSM_FAILED: NsmFailedError,
} satisfies Record<EnclaveApiErrorCode, new (message: string) => EnclaveApiError>)
