/**
 * Every failure of @enclave/attestation has a class and a stable code. Codes are never reused; the
 * README's error table lists the same set (a test checks that they agree).
 *
 * A verification that fails is not an exception: `verifier.verify()` returns every reason in its
 * result. `VerificationFailedError` exists for callers that prefer `verifier.assert()`.
 */

import type { VerificationFailure } from './result.js'

export type AttestationErrorCode =
  | 'ENCLAVE_ATTESTATION_INVALID_OPTION'
  | 'ENCLAVE_ATTESTATION_MALFORMED'
  | 'ENCLAVE_ATTESTATION_UNSUPPORTED_ALGORITHM'
  | 'ENCLAVE_ATTESTATION_COSE_SIGNATURE'
  | 'ENCLAVE_ATTESTATION_VERIFICATION_FAILED'
  | 'ENCLAVE_ATTESTATION_DEV_CA'
  | 'ENCLAVE_ATTESTATION_UNATTESTED_PEER'
  | 'ENCLAVE_ATTESTATION_NSM_UNAVAILABLE'
  | 'ENCLAVE_ATTESTATION_NSM_INVALID_ARGUMENT'
  | 'ENCLAVE_ATTESTATION_NSM_INVALID_INDEX'
  | 'ENCLAVE_ATTESTATION_NSM_INVALID_RESPONSE'
  | 'ENCLAVE_ATTESTATION_NSM_READ_ONLY_INDEX'
  | 'ENCLAVE_ATTESTATION_NSM_INVALID_OPERATION'
  | 'ENCLAVE_ATTESTATION_NSM_BUFFER_TOO_SMALL'
  | 'ENCLAVE_ATTESTATION_NSM_INPUT_TOO_LARGE'
  | 'ENCLAVE_ATTESTATION_NSM_INTERNAL_ERROR'

const CODES: Readonly<Record<AttestationErrorCode, true>> = {
  ENCLAVE_ATTESTATION_INVALID_OPTION: true,
  ENCLAVE_ATTESTATION_MALFORMED: true,
  ENCLAVE_ATTESTATION_UNSUPPORTED_ALGORITHM: true,
  ENCLAVE_ATTESTATION_COSE_SIGNATURE: true,
  ENCLAVE_ATTESTATION_VERIFICATION_FAILED: true,
  ENCLAVE_ATTESTATION_DEV_CA: true,
  ENCLAVE_ATTESTATION_UNATTESTED_PEER: true,
  ENCLAVE_ATTESTATION_NSM_UNAVAILABLE: true,
  ENCLAVE_ATTESTATION_NSM_INVALID_ARGUMENT: true,
  ENCLAVE_ATTESTATION_NSM_INVALID_INDEX: true,
  ENCLAVE_ATTESTATION_NSM_INVALID_RESPONSE: true,
  ENCLAVE_ATTESTATION_NSM_READ_ONLY_INDEX: true,
  ENCLAVE_ATTESTATION_NSM_INVALID_OPERATION: true,
  ENCLAVE_ATTESTATION_NSM_BUFFER_TOO_SMALL: true,
  ENCLAVE_ATTESTATION_NSM_INPUT_TOO_LARGE: true,
  ENCLAVE_ATTESTATION_NSM_INTERNAL_ERROR: true,
}
/** Every code, checked complete against the union at compile time. */
export const ATTESTATION_ERROR_CODES = Object.freeze(Object.keys(CODES) as AttestationErrorCode[])

export class AttestationError extends Error {
  readonly code: AttestationErrorCode
  constructor(code: AttestationErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AttestationError'
    this.code = code
  }
}

/** An option passed to a function of this package is out of range or of the wrong type. */
export class InvalidOptionError extends AttestationError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_INVALID_OPTION', message, options)
    this.name = 'InvalidOptionError'
  }
}

/** Bytes are not a well-formed CBOR / COSE_Sign1 / attestation document / NSM message. */
export class MalformedError extends AttestationError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_MALFORMED', message, options)
    this.name = 'MalformedError'
  }
}

/** A COSE algorithm or key type this package does not sign or verify with (ES256/ES384/ES512 only). */
export class UnsupportedAlgorithmError extends AttestationError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_UNSUPPORTED_ALGORITHM', message, options)
    this.name = 'UnsupportedAlgorithmError'
  }
}

/** A COSE_Sign1 signature does not verify with the given public key. */
export class CoseSignatureError extends AttestationError {
  constructor(message = 'COSE_Sign1 signature does not verify with the given public key') {
    super('ENCLAVE_ATTESTATION_COSE_SIGNATURE', message)
    this.name = 'CoseSignatureError'
  }
}

/** Thrown by `verifier.assert()`: the document failed; `failures` lists every reason. */
export class VerificationFailedError extends AttestationError {
  readonly failures: readonly VerificationFailure[]
  constructor(failures: readonly VerificationFailure[]) {
    super(
      'ENCLAVE_ATTESTATION_VERIFICATION_FAILED',
      `attestation document rejected: ${failures.map((f) => `${f.reason}: ${f.message}`).join('; ')}`,
    )
    this.name = 'VerificationFailedError'
    this.failures = failures
  }
}

/** Attested TLS: the peer is not an attested enclave under the policy; `failures` lists why. */
export class AttestedPeerError extends AttestationError {
  readonly failures: readonly VerificationFailure[]
  constructor(failures: readonly VerificationFailure[], message?: string) {
    super(
      'ENCLAVE_ATTESTATION_UNATTESTED_PEER',
      message ??
        `TLS peer is not an attested enclave: ${failures.map((f) => `${f.reason}: ${f.message}`).join('; ')}`,
    )
    this.name = 'AttestedPeerError'
    this.failures = failures
  }
}

/** The dev NSM's persisted CA could not be created or read (delete its folder to start anew). */
export class DevCaError extends AttestationError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_DEV_CA', message, options)
    this.name = 'DevCaError'
  }
}

/** No NSM here: /dev/nsm is absent (not inside an enclave) or the native addon is not built. */
export class NsmUnavailableError extends AttestationError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_UNAVAILABLE', message, options)
    this.name = 'NsmUnavailableError'
  }
}

/** The error names the NSM device (or the dev NSM) answers with, as in aws-nitro-enclaves-nsm-api. */
export const NSM_ERROR_NAMES = Object.freeze([
  'InvalidArgument',
  'InvalidIndex',
  'InvalidResponse',
  'ReadOnlyIndex',
  'InvalidOperation',
  'BufferTooSmall',
  'InputTooLarge',
  'InternalError',
] as const)

export type NsmErrorName = (typeof NSM_ERROR_NAMES)[number]

/** Base of the device's errors; `nsmError` is the device's own name for it. */
export class NsmError extends AttestationError {
  readonly nsmError: NsmErrorName
  constructor(
    code: AttestationErrorCode,
    nsmError: NsmErrorName,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options)
    this.name = 'NsmError'
    this.nsmError = nsmError
  }
}

/** The NSM rejected an argument (for instance user_data longer than 1024 bytes). */
export class NsmInvalidArgumentError extends NsmError {
  constructor(message = 'NSM: invalid argument', options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_INVALID_ARGUMENT', 'InvalidArgument', message, options)
    this.name = 'NsmInvalidArgumentError'
  }
}

/** PCR index out of range (the device has max_pcrs registers, 32 on Nitro). */
export class NsmInvalidIndexError extends NsmError {
  constructor(message = 'NSM: PCR index out of range', options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_INVALID_INDEX', 'InvalidIndex', message, options)
    this.name = 'NsmInvalidIndexError'
  }
}

/** The device's answer does not match the request (client side). */
export class NsmInvalidResponseError extends NsmError {
  constructor(message = 'NSM: response does not match the request', options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_INVALID_RESPONSE', 'InvalidResponse', message, options)
    this.name = 'NsmInvalidResponseError'
  }
}

/** The PCR is locked: it cannot be extended (PCRs 0-15 are locked at boot). */
export class NsmReadOnlyIndexError extends NsmError {
  constructor(message = 'NSM: PCR is locked (read-only)', options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_READ_ONLY_INDEX', 'ReadOnlyIndex', message, options)
    this.name = 'NsmReadOnlyIndexError'
  }
}

/** The operation is not allowed (for instance locking a range beyond max_pcrs). */
export class NsmInvalidOperationError extends NsmError {
  constructor(message = 'NSM: invalid operation', options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_INVALID_OPERATION', 'InvalidOperation', message, options)
    this.name = 'NsmInvalidOperationError'
  }
}

/** The response did not fit the 12288-byte buffer. */
export class NsmBufferTooSmallError extends NsmError {
  constructor(message = 'NSM: response buffer too small', options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_BUFFER_TOO_SMALL', 'BufferTooSmall', message, options)
    this.name = 'NsmBufferTooSmallError'
  }
}

/** The encoded request exceeds 4096 bytes (or the driver answered EMSGSIZE). */
export class NsmInputTooLargeError extends NsmError {
  constructor(message = 'NSM: request larger than 4096 bytes', options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_INPUT_TOO_LARGE', 'InputTooLarge', message, options)
    this.name = 'NsmInputTooLargeError'
  }
}

/** Any other device or driver failure (the driver's errno is in the message). */
export class NsmInternalError extends NsmError {
  constructor(message = 'NSM: internal error', options?: { cause?: unknown }) {
    super('ENCLAVE_ATTESTATION_NSM_INTERNAL_ERROR', 'InternalError', message, options)
    this.name = 'NsmInternalError'
  }
}

/** Builds the typed error for a device error name; unknown names become InternalError. */
export function nsmErrorFromName(name: string, detail?: string): NsmError {
  const suffix = detail ? `: ${detail}` : ''
  switch (name) {
    case 'InvalidArgument':
      return new NsmInvalidArgumentError(`NSM: invalid argument${suffix}`)
    case 'InvalidIndex':
      return new NsmInvalidIndexError(`NSM: PCR index out of range${suffix}`)
    case 'InvalidResponse':
      return new NsmInvalidResponseError(`NSM: response does not match the request${suffix}`)
    case 'ReadOnlyIndex':
      return new NsmReadOnlyIndexError(`NSM: PCR is locked (read-only)${suffix}`)
    case 'InvalidOperation':
      return new NsmInvalidOperationError(`NSM: invalid operation${suffix}`)
    case 'BufferTooSmall':
      return new NsmBufferTooSmallError(`NSM: response buffer too small${suffix}`)
    case 'InputTooLarge':
      return new NsmInputTooLargeError(`NSM: request larger than 4096 bytes${suffix}`)
    default:
      return new NsmInternalError(`NSM: internal error (${name})${suffix}`)
  }
}
