/**
 * Exit codes of `pipeline` (also in the README). `run` exits with the remote command's status, or
 * 128+N when a signal N killed it, so the codes below are chosen like ssh's and timeout(1)'s.
 */
export const EXIT = Object.freeze({
  OK: 0,
  /** The operation failed: refused path, missing file, checksum mismatch, no space, exec disabled. */
  FAILED: 1,
  /** Bad command line or config: unknown flag, missing value, unreadable identity or config. */
  USAGE: 2,
  /** `run --timeout` expired and the command was killed. */
  TIMEOUT: 124,
  /** The command exists but could not be executed. */
  CANNOT_EXECUTE: 126,
  /** The command was not found. */
  NOT_FOUND: 127,
  /** No session: cannot connect, TLS failed, server key or attestation refused, client key not authorized, busy. */
  CONNECTION: 255,
})

const USAGE_CODES = new Set([
  'ENCLAVE_PIPELINE_INVALID_OPTION',
  'ENCLAVE_PIPELINE_CONFIG_INVALID',
  'ENCLAVE_PIPELINE_MISSING_VALUE',
  'ENCLAVE_PIPELINE_IDENTITY_INVALID',
  'ENCLAVE_PIPELINE_AUTHORIZED_KEYS_INVALID',
  'ENCLAVE_VSOCK_INVALID_ADDRESS',
  'ENCLAVE_VSOCK_INVALID_OPTION',
])
const CONNECTION_CODES = new Set([
  'ENCLAVE_PIPELINE_SERVER_IDENTITY_MISMATCH',
  'ENCLAVE_PIPELINE_UNAUTHORIZED',
  'ENCLAVE_PIPELINE_ATTESTATION_FAILED',
  'ENCLAVE_PIPELINE_HANDSHAKE_FAILED',
  'ENCLAVE_PIPELINE_CONNECTION_LOST',
  'ENCLAVE_PIPELINE_BUSY',
])

export function exitCodeFor(error: unknown): number {
  const code = (error as { code?: unknown } | undefined)?.code
  if (typeof code !== 'string') return EXIT.FAILED
  if (USAGE_CODES.has(code)) return EXIT.USAGE
  if (CONNECTION_CODES.has(code)) return EXIT.CONNECTION
  if (code === 'ENCLAVE_PIPELINE_COMMAND_NOT_FOUND') return EXIT.NOT_FOUND
  if (code === 'ENCLAVE_PIPELINE_SPAWN_FAILED') return EXIT.CANNOT_EXECUTE
  // Transport errors (connect refused, timeout, vsock unavailable) mean no session either.
  if (code.startsWith('ENCLAVE_VSOCK_')) return EXIT.CONNECTION
  return EXIT.FAILED
}
