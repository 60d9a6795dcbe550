/**
 * @enclave/pipeline-cli: run commands and move files and folders into an enclave over TLS 1.3,
 * mutually authenticated by pinned key fingerprints, on vsock, hybrid vsock, Unix or TCP.
 *
 * @example
 * ```ts
 * import { createPipelineClient, loadIdentity, pinnedKeyVerifier } from '@enclave/pipeline-cli'
 *
 * const client = createPipelineClient({
 *   address: 'vsock://16:53000',
 *   identity: await loadIdentity('client.pem'),
 *   verifier: pinnedKeyVerifier(['sha256:…server key…']),
 * })
 * const { code } = await client.run({ argv: ['uname', '-a'] }, { stdout: process.stdout, stderr: process.stderr })
 * await client.sendFile('model.bin', 'models/model.bin')
 * ```
 */

export type { Logger } from '@enclave/logger'
export {
  createPipelineClient,
  type FileResult,
  type PipelineClient,
  type RunIo,
  type RunningCommand,
  type RunRequest,
  type RunResult,
  type TransferOptions,
} from './client.js'
export { DEFAULT_CONFIG_PATH, loadConfig, type PipelineConfig, parseConfig, pick } from './config.js'
export {
  AbortedError,
  AttestationFailedError,
  AuthorizedKeysInvalidError,
  BusyError,
  ChecksumMismatchError,
  CommandNotFoundError,
  ConfigInvalidError,
  ConnectionLostError,
  ERROR_CLASSES,
  ExecDisabledError,
  HandshakeFailedError,
  IdentityInvalidError,
  InvalidOptionError,
  IoFailedError,
  isPipelineError,
  LimitExceededError,
  MissingValueError,
  NoRootError,
  NoSpaceError,
  NotFoundError,
  PathRefusedError,
  PipelineError,
  type PipelineErrorCode,
  type PipelineErrorOptions,
  ProtocolViolationError,
  ServerIdentityMismatchError,
  SpawnFailedError,
  UnauthorizedError,
  WrongTypeError,
} from './errors.js'
export { exitCodeForSignal, FORWARDABLE_SIGNALS } from './exec.js'
export {
  createIdentityFile,
  fingerprintOfCertificate,
  generateIdentity,
  type Identity,
  loadAuthorizedKeys,
  loadDevIdentity,
  loadIdentity,
  parseAuthorizedKeys,
  userConfigDir,
} from './identity.js'
export {
  type ClientOptions,
  type CommonOptions,
  DEFAULTS,
  type Limits,
  type ServerOptions,
} from './options.js'
export { createPipelineServer, type PipelineServer, type ServerStats } from './server.js'
export { preferredCipherSuites } from './tls.js'
export type { ProgressListener, TreeStats } from './transfer.js'
export {
  type AttestationCheck,
  allOf,
  attestationVerifier,
  pinnedKeyVerifier,
  type ServerEvidence,
  type ServerVerifier,
} from './verifier.js'
