/**
 * Every failure of @enclave/kms is a KmsError with a stable `code`; switch on the code, never on
 * the message. The proxy answers the app with the same code in its JSON error body.
 */

export type KmsErrorCode =
  | 'ENCLAVE_KMS_INVALID_OPTION'
  | 'ENCLAVE_KMS_MALFORMED_CMS'
  | 'ENCLAVE_KMS_UNSUPPORTED_CMS'
  | 'ENCLAVE_KMS_DECRYPT_FAILED'
  | 'ENCLAVE_KMS_MISSING_CIPHERTEXT'
  | 'ENCLAVE_KMS_ATTESTATION_FAILED'
  | 'ENCLAVE_KMS_CREDENTIALS_FAILED'
  | 'ENCLAVE_KMS_BAD_REQUEST'
  | 'ENCLAVE_KMS_UPSTREAM_FAILED'

export class KmsError extends Error {
  readonly code: KmsErrorCode
  constructor(code: KmsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'KmsError'
    this.code = code
  }
}

/** An option is missing or outside its valid range. */
export class InvalidOptionError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_INVALID_OPTION', message, options)
    this.name = 'InvalidOptionError'
  }
}

/** CiphertextForRecipient is not a decodable CMS ContentInfo / EnvelopedData. */
export class MalformedCmsError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_MALFORMED_CMS', message, options)
    this.name = 'MalformedCmsError'
  }
}

/** The CMS decodes but uses a version or algorithm KMS never sends (and we refuse to guess at). */
export class UnsupportedCmsError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_UNSUPPORTED_CMS', message, options)
    this.name = 'UnsupportedCmsError'
  }
}

/** RSA-OAEP unwrap or AES-CBC decryption failed: the envelope is for another key, or damaged. */
export class DecryptFailedError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_DECRYPT_FAILED', message, options)
    this.name = 'DecryptFailedError'
  }
}

/** A response to a Recipient request carries no CiphertextForRecipient. */
export class MissingCiphertextError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_MISSING_CIPHERTEXT', message, options)
    this.name = 'MissingCiphertextError'
  }
}

/** The NSM could not produce the attestation document for the Recipient. */
export class AttestationFailedError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_ATTESTATION_FAILED', message, options)
    this.name = 'AttestationFailedError'
  }
}

/** The credentials provider (IMDSv2, host hand-over) failed or returned unusable credentials. */
export class CredentialsFailedError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_CREDENTIALS_FAILED', message, options)
    this.name = 'CredentialsFailedError'
  }
}

/** The proxy refused the app's request (no SigV4 scope, wrong service, bad JSON, too large). */
export class BadRequestError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_BAD_REQUEST', message, options)
    this.name = 'BadRequestError'
  }
}

/** The proxy could not reach the KMS endpoint or got an unreadable answer from it. */
export class UpstreamFailedError extends KmsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENCLAVE_KMS_UPSTREAM_FAILED', message, options)
    this.name = 'UpstreamFailedError'
  }
}

/** Code → class, in the order of the README's error table. */
export const KMS_ERROR_CLASSES = Object.freeze({
  ENCLAVE_KMS_INVALID_OPTION: InvalidOptionError,
  ENCLAVE_KMS_MALFORMED_CMS: MalformedCmsError,
  ENCLAVE_KMS_UNSUPPORTED_CMS: UnsupportedCmsError,
  ENCLAVE_KMS_DECRYPT_FAILED: DecryptFailedError,
  ENCLAVE_KMS_MISSING_CIPHERTEXT: MissingCiphertextError,
  ENCLAVE_KMS_ATTESTATION_FAILED: AttestationFailedError,
  ENCLAVE_KMS_CREDENTIALS_FAILED: CredentialsFailedError,
  ENCLAVE_KMS_BAD_REQUEST: BadRequestError,
  ENCLAVE_KMS_UPSTREAM_FAILED: UpstreamFailedError,
} satisfies Record<KmsErrorCode, new (message: string) => KmsError>)
