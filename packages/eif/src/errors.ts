/**
 * Typed errors of @enclave/eif. Every failure has a stable `code`; reader errors also say where
 * in the file the problem is (`offset`, `sectionIndex`) so a corrupt image can be diagnosed.
 */

export type EifErrorCode =
  | 'ENCLAVE_EIF_INVALID_OPTIONS'
  | 'ENCLAVE_EIF_IO'
  | 'ENCLAVE_EIF_ABORTED'
  | 'ENCLAVE_EIF_TRUNCATED'
  | 'ENCLAVE_EIF_BAD_MAGIC'
  | 'ENCLAVE_EIF_UNSUPPORTED_VERSION'
  | 'ENCLAVE_EIF_BAD_HEADER'
  | 'ENCLAVE_EIF_BAD_SECTION_COUNT'
  | 'ENCLAVE_EIF_BAD_SECTION_TABLE'
  | 'ENCLAVE_EIF_SECTION_OVERLAP'
  | 'ENCLAVE_EIF_TRAILING_DATA'
  | 'ENCLAVE_EIF_BAD_SECTION_HEADER'
  | 'ENCLAVE_EIF_BAD_SECTION_ORDER'
  | 'ENCLAVE_EIF_CRC_MISMATCH'
  | 'ENCLAVE_EIF_BAD_METADATA'
  | 'ENCLAVE_EIF_BAD_SIGNATURE_SECTION'
  | 'ENCLAVE_EIF_BAD_CERTIFICATE'
  | 'ENCLAVE_EIF_BAD_KEY'
  | 'ENCLAVE_EIF_SIGNER_FAILED'
  | 'ENCLAVE_EIF_SIZE_MISMATCH'
  | 'ENCLAVE_EIF_WRITER_STATE'

/** Where in an EIF a reader error was found. */
export interface EifErrorLocation {
  /** Absolute byte offset in the file. */
  offset?: number
  /** Index of the section (file order, 0-based). */
  sectionIndex?: number
}

export interface EifErrorOptions extends EifErrorLocation {
  cause?: unknown
}

export class EifError extends Error {
  readonly code: EifErrorCode
  readonly offset: number | undefined
  readonly sectionIndex: number | undefined

  constructor(code: EifErrorCode, message: string, options: EifErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'EifError'
    this.code = code
    this.offset = options.offset
    this.sectionIndex = options.sectionIndex
  }
}

/** A writer or reader option is missing, of the wrong type or out of range. */
export class EifInvalidOptionsError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_INVALID_OPTIONS', message, options)
    this.name = 'EifInvalidOptionsError'
  }
}

/** A file system call failed (open, read, write, fsync, rename); `cause` is the system error. */
export class EifIoError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_IO', message, options)
    this.name = 'EifIoError'
  }
}

/** The operation was cancelled through its AbortSignal; nothing was left at the destination. */
export class EifAbortedError extends EifError {
  constructor(message = 'EIF operation aborted', options?: EifErrorOptions) {
    super('ENCLAVE_EIF_ABORTED', message, options)
    this.name = 'EifAbortedError'
  }
}

/** The file ends before the header, a section header or a section's data. */
export class EifTruncatedError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_TRUNCATED', message, options)
    this.name = 'EifTruncatedError'
  }
}

/** The first 4 bytes are not `.eif`: this is not an Enclave Image File. */
export class EifBadMagicError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_MAGIC', message, options)
    this.name = 'EifBadMagicError'
  }
}

/** The header's version is not one this reader understands (2, 3 or 4). */
export class EifUnsupportedVersionError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_UNSUPPORTED_VERSION', message, options)
    this.name = 'EifUnsupportedVersionError'
  }
}

/** A header field other than the section table is invalid (reserved flag bits, reserved fields). */
export class EifBadHeaderError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_HEADER', message, options)
    this.name = 'EifBadHeaderError'
  }
}

/** `num_sections` is outside the range the version allows (at most 32). */
export class EifBadSectionCountError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_SECTION_COUNT', message, options)
    this.name = 'EifBadSectionCountError'
  }
}

/** The header's section offset/size table is inconsistent (gap, unused entry set, value too large). */
export class EifBadSectionTableError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_SECTION_TABLE', message, options)
    this.name = 'EifBadSectionTableError'
  }
}

/** A section starts before the previous one ends. */
export class EifSectionOverlapError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_SECTION_OVERLAP', message, options)
    this.name = 'EifSectionOverlapError'
  }
}

/** Bytes follow the last section. */
export class EifTrailingDataError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_TRAILING_DATA', message, options)
    this.name = 'EifTrailingDataError'
  }
}

/** A 12-byte section header has an invalid type, non-zero flags or a size that disagrees with the table. */
export class EifBadSectionHeaderError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_SECTION_HEADER', message, options)
    this.name = 'EifBadSectionHeaderError'
  }
}

/** A section is missing, duplicated or out of the order kernel, cmdline, metadata, ramdisk…, signature. */
export class EifBadSectionOrderError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_SECTION_ORDER', message, options)
    this.name = 'EifBadSectionOrderError'
  }
}

/** The CRC-32 stored in the header does not match the file's bytes. */
export class EifCrcMismatchError extends EifError {
  readonly expected: number
  readonly actual: number

  constructor(expected: number, actual: number, options?: EifErrorOptions) {
    super(
      'ENCLAVE_EIF_CRC_MISMATCH',
      `EIF CRC-32 mismatch: the header says 0x${hex32(expected)} but the contents hash to 0x${hex32(actual)}; the file is corrupt`,
      options,
    )
    this.name = 'EifCrcMismatchError'
    this.expected = expected
    this.actual = actual
  }
}

/** The metadata section is not the JSON object nitro-cli writes, or metadata options are invalid. */
export class EifBadMetadataError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_METADATA', message, options)
    this.name = 'EifBadMetadataError'
  }
}

/** The signature section is not a CBOR array of {signing_certificate, signature} or its COSE_Sign1 is malformed. */
export class EifBadSignatureSectionError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_SIGNATURE_SECTION', message, options)
    this.name = 'EifBadSignatureSectionError'
  }
}

/** A signing certificate cannot be parsed as X.509 (PEM or DER) or does not match the key. */
export class EifBadCertificateError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_CERTIFICATE', message, options)
    this.name = 'EifBadCertificateError'
  }
}

/** A signing key is not an EC private key on P-256, P-384 or P-521. */
export class EifBadKeyError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_BAD_KEY', message, options)
    this.name = 'EifBadKeyError'
  }
}

/** A pluggable signer threw or returned a signature of the wrong length. */
export class EifSignerFailedError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_SIGNER_FAILED', message, options)
    this.name = 'EifSignerFailedError'
  }
}

/** A section stream produced a different number of bytes than its declared size. */
export class EifSizeMismatchError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_SIZE_MISMATCH', message, options)
    this.name = 'EifSizeMismatchError'
  }
}

/** An EifWriter method was called out of order (kernel, cmdline, ramdisk…, finish), concurrently or after finish/abort. */
export class EifWriterStateError extends EifError {
  constructor(message: string, options?: EifErrorOptions) {
    super('ENCLAVE_EIF_WRITER_STATE', message, options)
    this.name = 'EifWriterStateError'
  }
}

function hex32(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0')
}
