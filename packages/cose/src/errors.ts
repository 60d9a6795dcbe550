/**
 * Typed errors of @enclave/cose. Every failure has a class and a stable code; codes are never
 * reused, and the README's error table lists the same set (a test checks that they agree).
 */

export type CoseErrorCode =
  | 'ENCLAVE_COSE_INVALID_OPTION'
  | 'ENCLAVE_COSE_MALFORMED'
  | 'ENCLAVE_COSE_UNSUPPORTED_ALGORITHM'
  | 'ENCLAVE_COSE_BAD_KEY'
  | 'ENCLAVE_COSE_BAD_SIGNATURE'
  | 'ENCLAVE_COSE_SIGNER_FAILED'
  | 'ENCLAVE_COSE_BAD_SIGNER_OUTPUT'

const CODES: Readonly<Record<CoseErrorCode, true>> = {
  ENCLAVE_COSE_INVALID_OPTION: true,
  ENCLAVE_COSE_MALFORMED: true,
  ENCLAVE_COSE_UNSUPPORTED_ALGORITHM: true,
  ENCLAVE_COSE_BAD_KEY: true,
  ENCLAVE_COSE_BAD_SIGNATURE: true,
  ENCLAVE_COSE_SIGNER_FAILED: true,
  ENCLAVE_COSE_BAD_SIGNER_OUTPUT: true,
}
/** Every code, checked complete against the union at compile time. */
export const COSE_ERROR_CODES = Object.freeze(Object.keys(CODES) as CoseErrorCode[])

export class CoseError extends Error {
  readonly code: CoseErrorCode
  constructor(code: CoseErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CoseError'
    this.code = code
  }
}

/** An argument is of the wrong type (payload not bytes, unknown option value). */
export class CoseInvalidOptionError extends CoseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_COSE_INVALID_OPTION', message, options)
    this.name = 'CoseInvalidOptionError'
  }
}

/** Bytes are not a well-formed COSE_Sign1 (or DER ECDSA signature). */
export class CoseMalformedError extends CoseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_COSE_MALFORMED', message, options)
    this.name = 'CoseMalformedError'
  }
}

/** The COSE alg is not ES256/ES384/ES512, or not one the caller accepts. */
export class CoseUnsupportedAlgorithmError extends CoseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_COSE_UNSUPPORTED_ALGORITHM', message, options)
    this.name = 'CoseUnsupportedAlgorithmError'
  }
}

/** The key does not parse, is not an EC key on P-256/P-384/P-521, or does not fit the algorithm. */
export class CoseBadKeyError extends CoseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_COSE_BAD_KEY', message, options)
    this.name = 'CoseBadKeyError'
  }
}

/** The signature does not verify with the given key. */
export class CoseBadSignatureError extends CoseError {
  constructor(
    message = 'the COSE_Sign1 signature does not verify with the given key',
    options?: { cause?: unknown },
  ) {
    super('ENCLAVE_COSE_BAD_SIGNATURE', message, options)
    this.name = 'CoseBadSignatureError'
  }
}

/** The external signer threw or rejected; its error is the `cause`. */
export class CoseSignerFailedError extends CoseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_COSE_SIGNER_FAILED', message, options)
    this.name = 'CoseSignerFailedError'
  }
}

/** The external signer returned something other than a raw r‖s signature of the algorithm's length. */
export class CoseBadSignerOutputError extends CoseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_COSE_BAD_SIGNER_OUTPUT', message, options)
    this.name = 'CoseBadSignerOutputError'
  }
}
