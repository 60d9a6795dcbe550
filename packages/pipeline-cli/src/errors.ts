/**
 * Every failure of this package is a PipelineError with a stable `code`. Errors raised on the
 * server travel to the client as `{ type: 'error', code, message }` and are rebuilt there into the
 * same class (see errorFromWire), so a caller switches on `code` whichever side failed.
 */

export type PipelineErrorCode =
  | 'ENCLAVE_PIPELINE_INVALID_OPTION'
  | 'ENCLAVE_PIPELINE_CONFIG_INVALID'
  | 'ENCLAVE_PIPELINE_MISSING_VALUE'
  | 'ENCLAVE_PIPELINE_IDENTITY_INVALID'
  | 'ENCLAVE_PIPELINE_AUTHORIZED_KEYS_INVALID'
  | 'ENCLAVE_PIPELINE_SERVER_IDENTITY_MISMATCH'
  | 'ENCLAVE_PIPELINE_ATTESTATION_FAILED'
  | 'ENCLAVE_PIPELINE_UNAUTHORIZED'
  | 'ENCLAVE_PIPELINE_HANDSHAKE_FAILED'
  | 'ENCLAVE_PIPELINE_CONNECTION_LOST'
  | 'ENCLAVE_PIPELINE_PROTOCOL_VIOLATION'
  | 'ENCLAVE_PIPELINE_LIMIT_EXCEEDED'
  | 'ENCLAVE_PIPELINE_BUSY'
  | 'ENCLAVE_PIPELINE_EXEC_DISABLED'
  | 'ENCLAVE_PIPELINE_SPAWN_FAILED'
  | 'ENCLAVE_PIPELINE_COMMAND_NOT_FOUND'
  | 'ENCLAVE_PIPELINE_NO_ROOT'
  | 'ENCLAVE_PIPELINE_PATH_REFUSED'
  | 'ENCLAVE_PIPELINE_NOT_FOUND'
  | 'ENCLAVE_PIPELINE_WRONG_TYPE'
  | 'ENCLAVE_PIPELINE_NO_SPACE'
  | 'ENCLAVE_PIPELINE_CHECKSUM_MISMATCH'
  | 'ENCLAVE_PIPELINE_IO_FAILED'
  | 'ENCLAVE_PIPELINE_ABORTED'

export interface PipelineErrorOptions {
  cause?: unknown
}

export class PipelineError extends Error {
  readonly code: PipelineErrorCode
  /** True when the error was raised by the peer and rebuilt from its `error` message. */
  remote = false

  constructor(code: PipelineErrorCode, message: string, options?: PipelineErrorOptions) {
    super(message, options)
    this.name = 'PipelineError'
    this.code = code
  }
}

function define<C extends PipelineErrorCode>(name: string, code: C) {
  const Class = class extends PipelineError {
    constructor(message: string, options?: PipelineErrorOptions) {
      super(code, message, options)
      this.name = name
    }
  }
  Object.defineProperty(Class, 'name', { value: name })
  return Class
}

/** An option is missing its valid type or range; the message names the option and the range. */
export class InvalidOptionError extends define('InvalidOptionError', 'ENCLAVE_PIPELINE_INVALID_OPTION') {}
/** The TOML config file does not parse, or a key has the wrong type. */
export class ConfigInvalidError extends define('ConfigInvalidError', 'ENCLAVE_PIPELINE_CONFIG_INVALID') {}
/** A required value was given neither on the command line nor in the config file. */
export class MissingValueError extends define('MissingValueError', 'ENCLAVE_PIPELINE_MISSING_VALUE') {}
/** An identity file (private key + certificate PEM) is missing, unreadable or inconsistent. */
export class IdentityInvalidError extends define(
  'IdentityInvalidError',
  'ENCLAVE_PIPELINE_IDENTITY_INVALID',
) {}
/** The authorized-keys file cannot be read or has a line that is not a key fingerprint. */
export class AuthorizedKeysInvalidError extends define(
  'AuthorizedKeysInvalidError',
  'ENCLAVE_PIPELINE_AUTHORIZED_KEYS_INVALID',
) {}
/** The server's TLS key is not the pinned one (or its attestation did not verify). */
export class ServerIdentityMismatchError extends define(
  'ServerIdentityMismatchError',
  'ENCLAVE_PIPELINE_SERVER_IDENTITY_MISMATCH',
) {}
/** The server cannot attest, or its attestation document does not verify or does not bind its TLS key. */
export class AttestationFailedError extends define(
  'AttestationFailedError',
  'ENCLAVE_PIPELINE_ATTESTATION_FAILED',
) {}
/** The server does not list the client's key in its authorized-keys file. */
export class UnauthorizedError extends define('UnauthorizedError', 'ENCLAVE_PIPELINE_UNAUTHORIZED') {}
/** The TLS 1.3 handshake failed or did not finish in time. */
export class HandshakeFailedError extends define(
  'HandshakeFailedError',
  'ENCLAVE_PIPELINE_HANDSHAKE_FAILED',
) {}
/** The connection closed before the session finished. */
export class ConnectionLostError extends define('ConnectionLostError', 'ENCLAVE_PIPELINE_CONNECTION_LOST') {}
/** The peer sent a malformed, unknown or out-of-order message; the session ends. */
export class ProtocolViolationError extends define(
  'ProtocolViolationError',
  'ENCLAVE_PIPELINE_PROTOCOL_VIOLATION',
) {}
/** A message, command, path or environment is larger than the configured limit. */
export class LimitExceededError extends define('LimitExceededError', 'ENCLAVE_PIPELINE_LIMIT_EXCEEDED') {}
/** The server already runs its maximum number of sessions. */
export class BusyError extends define('BusyError', 'ENCLAVE_PIPELINE_BUSY') {}
/** The server was started without --allow-exec. */
export class ExecDisabledError extends define('ExecDisabledError', 'ENCLAVE_PIPELINE_EXEC_DISABLED') {}
/** The command could not be started (not executable, permission denied, bad cwd). */
export class SpawnFailedError extends define('SpawnFailedError', 'ENCLAVE_PIPELINE_SPAWN_FAILED') {}
/** The command (or its working folder) does not exist on the server. */
export class CommandNotFoundError extends define(
  'CommandNotFoundError',
  'ENCLAVE_PIPELINE_COMMAND_NOT_FOUND',
) {}
/** A file operation reached a server that has no --root folders. */
export class NoRootError extends define('NoRootError', 'ENCLAVE_PIPELINE_NO_ROOT') {}
/** A path leaves the allowed folders (`..`, an absolute path outside, a symlink that escapes). */
export class PathRefusedError extends define('PathRefusedError', 'ENCLAVE_PIPELINE_PATH_REFUSED') {}
/** A file or directory does not exist. */
export class NotFoundError extends define('NotFoundError', 'ENCLAVE_PIPELINE_NOT_FOUND') {}
/** A path is of the wrong kind (a directory where a file is needed, or the reverse). */
export class WrongTypeError extends define('WrongTypeError', 'ENCLAVE_PIPELINE_WRONG_TYPE') {}
/** The destination filesystem is full (ENOSPC or EDQUOT). */
export class NoSpaceError extends define('NoSpaceError', 'ENCLAVE_PIPELINE_NO_SPACE') {}
/** The SHA-256 or size of the received data differs from the sender's. */
export class ChecksumMismatchError extends define(
  'ChecksumMismatchError',
  'ENCLAVE_PIPELINE_CHECKSUM_MISMATCH',
) {}
/** Another filesystem error (permissions, read-only filesystem, ...); `cause` has the system error. */
export class IoFailedError extends define('IoFailedError', 'ENCLAVE_PIPELINE_IO_FAILED') {}
/** The operation was cancelled through its AbortSignal or by the peer. */
export class AbortedError extends define('AbortedError', 'ENCLAVE_PIPELINE_ABORTED') {}

/** Every error class, by code (the README table and the code union are checked against it). */
export const ERROR_CLASSES: { readonly [C in PipelineErrorCode]: new (message: string) => PipelineError } =
  Object.freeze({
    ENCLAVE_PIPELINE_INVALID_OPTION: InvalidOptionError,
    ENCLAVE_PIPELINE_CONFIG_INVALID: ConfigInvalidError,
    ENCLAVE_PIPELINE_MISSING_VALUE: MissingValueError,
    ENCLAVE_PIPELINE_IDENTITY_INVALID: IdentityInvalidError,
    ENCLAVE_PIPELINE_AUTHORIZED_KEYS_INVALID: AuthorizedKeysInvalidError,
    ENCLAVE_PIPELINE_SERVER_IDENTITY_MISMATCH: ServerIdentityMismatchError,
    ENCLAVE_PIPELINE_ATTESTATION_FAILED: AttestationFailedError,
    ENCLAVE_PIPELINE_UNAUTHORIZED: UnauthorizedError,
    ENCLAVE_PIPELINE_HANDSHAKE_FAILED: HandshakeFailedError,
    ENCLAVE_PIPELINE_CONNECTION_LOST: ConnectionLostError,
    ENCLAVE_PIPELINE_PROTOCOL_VIOLATION: ProtocolViolationError,
    ENCLAVE_PIPELINE_LIMIT_EXCEEDED: LimitExceededError,
    ENCLAVE_PIPELINE_BUSY: BusyError,
    ENCLAVE_PIPELINE_EXEC_DISABLED: ExecDisabledError,
    ENCLAVE_PIPELINE_SPAWN_FAILED: SpawnFailedError,
    ENCLAVE_PIPELINE_COMMAND_NOT_FOUND: CommandNotFoundError,
    ENCLAVE_PIPELINE_NO_ROOT: NoRootError,
    ENCLAVE_PIPELINE_PATH_REFUSED: PathRefusedError,
    ENCLAVE_PIPELINE_NOT_FOUND: NotFoundError,
    ENCLAVE_PIPELINE_WRONG_TYPE: WrongTypeError,
    ENCLAVE_PIPELINE_NO_SPACE: NoSpaceError,
    ENCLAVE_PIPELINE_CHECKSUM_MISMATCH: ChecksumMismatchError,
    ENCLAVE_PIPELINE_IO_FAILED: IoFailedError,
    ENCLAVE_PIPELINE_ABORTED: AbortedError,
  })

/** True for a PipelineError from either module format (ESM and CJS copies loaded together). */
export function isPipelineError(error: unknown): error is PipelineError {
  if (error instanceof PipelineError) return true
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined
  return typeof code === 'string' && Object.hasOwn(ERROR_CLASSES, code)
}

/** Rebuilds an error the peer reported; an unknown code becomes a ProtocolViolationError. */
export function errorFromWire(code: string, message: string): PipelineError {
  const Class = Object.hasOwn(ERROR_CLASSES, code) ? ERROR_CLASSES[code as PipelineErrorCode] : undefined
  const error = Class
    ? new Class(message)
    : new ProtocolViolationError(`the peer reported an unknown error code ${code}: ${message}`)
  error.remote = true
  return error
}

/** Maps a filesystem error to a typed error whose message names the path and the fix. */
export function fsError(error: unknown, path: string, doing: string): PipelineError {
  if (isPipelineError(error)) return error
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new NoSpaceError(
        `no space left on the device while ${doing} ${path} (${code}); free space or choose another destination`,
        { cause: error },
      )
    case 'ENOENT':
      return new NotFoundError(`${path} does not exist (while ${doing} it)`, { cause: error })
    case 'EISDIR':
      return new WrongTypeError(`${path} is a directory; ${doing} needs a file`, { cause: error })
    case 'ENOTDIR':
      return new WrongTypeError(`a component of ${path} is not a directory`, { cause: error })
    case 'ELOOP':
      return new PathRefusedError(`${path} is a symbolic link, which is not followed here`, { cause: error })
    default:
      return new IoFailedError(
        `${doing} ${path} failed: ${(error as Error | undefined)?.message ?? String(error)}`,
        { cause: error },
      )
  }
}
