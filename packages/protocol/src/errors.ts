/**
 * Every failure of this package is a ProtocolError with a stable `code`. Bad bytes from a peer,
 * bad values handed to an encoder and bad options all land here, so a caller can catch one class
 * and switch on `code` (never on the message text).
 */

export type ProtocolErrorCode =
  | 'ENCLAVE_PROTOCOL_INVALID_OPTION'
  | 'ENCLAVE_PROTOCOL_INVALID_VALUE'
  | 'ENCLAVE_PROTOCOL_INVALID_ADDRESS'
  | 'ENCLAVE_PROTOCOL_INVALID_UUID'
  | 'ENCLAVE_PROTOCOL_INVALID_ACK'
  | 'ENCLAVE_PROTOCOL_MALFORMED_HEADER'
  | 'ENCLAVE_PROTOCOL_MALFORMED_HEARTBEAT'
  | 'ENCLAVE_PROTOCOL_INVALID_PADDING'
  | 'ENCLAVE_PROTOCOL_FRAME_TOO_LARGE'
  | 'ENCLAVE_PROTOCOL_LINE_TOO_LONG'
  | 'ENCLAVE_PROTOCOL_INVALID_JSON'
  | 'ENCLAVE_PROTOCOL_INVALID_UTF8'
  | 'ENCLAVE_PROTOCOL_BUFFER_OVERFLOW'
  | 'ENCLAVE_PROTOCOL_TRUNCATED'
  | 'ENCLAVE_PROTOCOL_DECODER_DONE'

export interface ProtocolErrorOptions {
  cause?: unknown
}

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode

  constructor(code: ProtocolErrorCode, message: string, options?: ProtocolErrorOptions) {
    super(message, options)
    this.name = 'ProtocolError'
    this.code = code
  }
}

/** An option is outside its valid range (thrown by constructors and encoders, never by peer bytes). */
export class InvalidOptionError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_INVALID_OPTION', message, options)
    this.name = 'InvalidOptionError'
  }
}

/** A value handed to an encoder cannot be represented on the wire (port > 65535, negative u64...). */
export class InvalidValueError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_INVALID_VALUE', message, options)
    this.name = 'InvalidValueError'
  }
}

/** A host handed to the original-destination encoder is not a literal IPv4 or IPv6 address. */
export class InvalidAddressError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_INVALID_ADDRESS', message, options)
    this.name = 'InvalidAddressError'
  }
}

/** A UUID string is not in the canonical 8-4-4-4-12 hex form, or a byte UUID is not 16 bytes. */
export class InvalidUuidError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_INVALID_UUID', message, options)
    this.name = 'InvalidUuidError'
  }
}

/** The peer sent something other than the two ACK bytes 0x06 0x0A. */
export class InvalidAckError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_INVALID_ACK', message, options)
    this.name = 'InvalidAckError'
  }
}

/** The transparent original-destination header starts with a version byte other than 4 or 6. */
export class MalformedHeaderError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_MALFORMED_HEADER', message, options)
    this.name = 'MalformedHeaderError'
  }
}

/** A 17-byte heartbeat record does not end with 0x0A: the stream is out of step. */
export class MalformedHeartbeatError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_MALFORMED_HEARTBEAT', message, options)
    this.name = 'MalformedHeartbeatError'
  }
}

/** A pipeline u64's ninth (pad) byte is not 0x00: the stream is out of step. */
export class InvalidPaddingError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_INVALID_PADDING', message, options)
    this.name = 'InvalidPaddingError'
  }
}

/** A length prefix (frame or pipeline string) is larger than the configured maximum. */
export class FrameTooLargeError extends ProtocolError {
  readonly length: number | bigint
  readonly maxLength: number

  constructor(length: number | bigint, maxLength: number, message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_FRAME_TOO_LARGE', message, options)
    this.name = 'FrameTooLargeError'
    this.length = length
    this.maxLength = maxLength
  }
}

/** A line grew past the configured maximum before its 0x0A arrived. */
export class LineTooLongError extends ProtocolError {
  readonly maxLength: number

  constructor(maxLength: number, message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_LINE_TOO_LONG', message, options)
    this.name = 'LineTooLongError'
    this.maxLength = maxLength
  }
}

/** A JSON line does not parse, or a value cannot be serialised as JSON. */
export class InvalidJsonError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_INVALID_JSON', message, options)
    this.name = 'InvalidJsonError'
  }
}

/** Bytes that must be text are not valid UTF-8. */
export class InvalidUtf8Error extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_INVALID_UTF8', message, options)
    this.name = 'InvalidUtf8Error'
  }
}

/** More bytes were pushed into a pull-style reader than it may hold unread. */
export class BufferOverflowError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_BUFFER_OVERFLOW', message, options)
    this.name = 'BufferOverflowError'
  }
}

/** The input ended (end() was called) in the middle of a message. */
export class TruncatedInputError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_TRUNCATED', message, options)
    this.name = 'TruncatedInputError'
  }
}

/** push() was called on a one-message decoder (ACK, header) after it produced its message. */
export class DecoderDoneError extends ProtocolError {
  constructor(message: string, options?: ProtocolErrorOptions) {
    super('ENCLAVE_PROTOCOL_DECODER_DONE', message, options)
    this.name = 'DecoderDoneError'
  }
}

/** Every code with its class, in README order; the README test checks the three agree. */
export const PROTOCOL_ERROR_CLASSES = Object.freeze({
  ENCLAVE_PROTOCOL_INVALID_OPTION: InvalidOptionError,
  ENCLAVE_PROTOCOL_INVALID_VALUE: InvalidValueError,
  ENCLAVE_PROTOCOL_INVALID_ADDRESS: InvalidAddressError,
  ENCLAVE_PROTOCOL_INVALID_UUID: InvalidUuidError,
  ENCLAVE_PROTOCOL_INVALID_ACK: InvalidAckError,
  ENCLAVE_PROTOCOL_MALFORMED_HEADER: MalformedHeaderError,
  ENCLAVE_PROTOCOL_MALFORMED_HEARTBEAT: MalformedHeartbeatError,
  ENCLAVE_PROTOCOL_INVALID_PADDING: InvalidPaddingError,
  ENCLAVE_PROTOCOL_FRAME_TOO_LARGE: FrameTooLargeError,
  ENCLAVE_PROTOCOL_LINE_TOO_LONG: LineTooLongError,
  ENCLAVE_PROTOCOL_INVALID_JSON: InvalidJsonError,
  ENCLAVE_PROTOCOL_INVALID_UTF8: InvalidUtf8Error,
  ENCLAVE_PROTOCOL_BUFFER_OVERFLOW: BufferOverflowError,
  ENCLAVE_PROTOCOL_TRUNCATED: TruncatedInputError,
  ENCLAVE_PROTOCOL_DECODER_DONE: DecoderDoneError,
} satisfies Record<ProtocolErrorCode, new (...args: never[]) => ProtocolError>)

/**
 * True for any error of this package. Checks the code rather than `instanceof` so it also holds
 * when the ESM and CJS builds are both loaded (two copies of the class).
 */
export function isProtocolError(error: unknown): error is ProtocolError {
  if (error instanceof ProtocolError) return true
  const code = (error as { code?: unknown } | null)?.code
  return error instanceof Error && typeof code === 'string' && Object.hasOwn(PROTOCOL_ERROR_CLASSES, code)
}
