import type { DevModeOptions, TransportAddress } from '@enclave/vsock-transport'
import { InvalidOptionError } from './errors.js'
import type { Identity } from './identity.js'
import type { ServerVerifier } from './verifier.js'

/** Limits shared by both ends; a peer that goes past one gets LimitExceededError and loses its session. */
export interface Limits {
  /** Largest data chunk in one frame, bytes. @default 262144 (256 KiB) */
  maxChunkBytes?: number
  /** Largest JSON control message, bytes. @default 65536 */
  maxControlBytes?: number
  /** Largest command (argv or --command, plus env and cwd), bytes. @default 65536 */
  maxCommandBytes?: number
  /** Longest path, bytes. @default 4096 */
  maxPathBytes?: number
}

export interface CommonOptions extends Limits {
  /** This end's TLS identity (key + self-signed certificate). */
  identity: Identity
  /** TLS 1.3 suites, ':'-separated, or 'auto' (fastest measured first). @default 'auto' */
  ciphers?: string
  /** Time allowed for the TLS handshake and the first request, ms. @default 10000 */
  handshakeTimeoutMs?: number
  /** Transport dev mode (vsock:// as Unix sockets), passed to @enclave/vsock-transport. @default undefined */
  dev?: DevModeOptions | false
}

export interface ServerOptions extends CommonOptions {
  /** Where to listen: vsock://any:PORT, unix:///path, tcp://host:port, hvsock:///path:PORT. */
  address: string | TransportAddress
  /** Fingerprints (`sha256:<hex>`) of the client keys allowed to connect. */
  authorizedKeys: Iterable<string>
  /** Folders that file operations may touch; none means file operations are refused. @default [] */
  roots?: readonly string[]
  /** Allow `run`. Off by default: with it, anyone authorized runs code as the server's user. @default false */
  allowExec?: boolean
  /** Sessions served at once; more are refused with BusyError. @default 64 */
  maxSessions?: number
  /** A file transfer with no traffic for this long is cut (run sessions may be silent), ms. @default 60000 */
  idleTimeoutMs?: number
  /** Wait between SIGTERM and SIGKILL when a command times out or its client leaves, ms. @default 2000 */
  killGraceMs?: number
  /**
   * At start, upload temp files (`.pipeline-<16 hex>.tmp`) under the roots unchanged for this long
   * are removed: leftovers of a server that was killed mid-upload. The effective age is at least
   * twice `idleTimeoutMs`, since a live upload is cut after that much silence. 0 turns the sweep off,
   * ms. @default 3600000 (1 hour)
   */
  staleTempMs?: number
  /**
   * Produces an attestation document binding this server's TLS key (`publicKey`, DER SPKI) and the
   * client's nonce, e.g. `(r) => nsm.getAttestationDocument(r)`. @default undefined (no attestation)
   */
  attest?: (request: { nonce: Uint8Array; publicKey: Uint8Array }) => Promise<Uint8Array>
}

export interface ClientOptions extends CommonOptions {
  /** The server's address. */
  address: string | TransportAddress
  /** Decides whether the server is the right one (pinnedKeyVerifier(...)). */
  verifier: ServerVerifier
  /** Time allowed to connect, ms. @default 10000 */
  connectTimeoutMs?: number
}

export const DEFAULTS = Object.freeze({
  maxChunkBytes: 256 * 1024,
  maxControlBytes: 64 * 1024,
  maxCommandBytes: 64 * 1024,
  maxPathBytes: 4096,
  ciphers: 'auto',
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  maxSessions: 64,
  killGraceMs: 2000,
  idleTimeoutMs: 60_000,
  staleTempMs: 3_600_000,
})

function integer(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const result = value ?? fallback
  if (!Number.isSafeInteger(result) || result < min || result > max) {
    throw new InvalidOptionError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return result
}

function ciphers(value: string | undefined): string {
  const result = value ?? DEFAULTS.ciphers
  if (result === 'auto') return result
  const valid = ['TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384']
  const parts = result.split(':')
  if (parts.length === 0 || !parts.every((part) => valid.includes(part))) {
    throw new InvalidOptionError(
      `ciphers must be 'auto' or a ':'-separated list of ${valid.join(', ')}; got ${result}`,
    )
  }
  return result
}

export type ResolvedCommon = Readonly<
  Required<Omit<CommonOptions, 'dev'>> & { dev: DevModeOptions | false | undefined }
>

function resolveCommon(options: CommonOptions): ResolvedCommon {
  if (!options.identity)
    throw new InvalidOptionError('identity is required (see loadIdentity / loadDevIdentity)')
  return Object.freeze({
    identity: options.identity,
    ciphers: ciphers(options.ciphers),
    handshakeTimeoutMs: integer(
      'handshakeTimeoutMs',
      options.handshakeTimeoutMs,
      DEFAULTS.handshakeTimeoutMs,
      100,
      600_000,
    ),
    maxChunkBytes: integer(
      'maxChunkBytes',
      options.maxChunkBytes,
      DEFAULTS.maxChunkBytes,
      1024,
      16 * 1024 * 1024,
    ),
    maxControlBytes: integer(
      'maxControlBytes',
      options.maxControlBytes,
      DEFAULTS.maxControlBytes,
      1024,
      16 * 1024 * 1024,
    ),
    maxCommandBytes: integer(
      'maxCommandBytes',
      options.maxCommandBytes,
      DEFAULTS.maxCommandBytes,
      16,
      16 * 1024 * 1024,
    ),
    maxPathBytes: integer('maxPathBytes', options.maxPathBytes, DEFAULTS.maxPathBytes, 16, 65536),
    dev: options.dev,
  })
}

export type ResolvedServerOptions = ResolvedCommon &
  Readonly<{
    address: string | TransportAddress
    authorizedKeys: ReadonlySet<string>
    roots: readonly string[]
    allowExec: boolean
    maxSessions: number
    killGraceMs: number
    idleTimeoutMs: number
    staleTempMs: number
    attest: ServerOptions['attest']
  }>

export function resolveServerOptions(options: ServerOptions): ResolvedServerOptions {
  if (!options.address) throw new InvalidOptionError('address is required')
  return Object.freeze({
    ...resolveCommon(options),
    address: options.address,
    authorizedKeys: new Set(options.authorizedKeys),
    roots: Object.freeze([...(options.roots ?? [])]),
    allowExec: options.allowExec === true,
    maxSessions: integer('maxSessions', options.maxSessions, DEFAULTS.maxSessions, 1, 100_000),
    killGraceMs: integer('killGraceMs', options.killGraceMs, DEFAULTS.killGraceMs, 0, 600_000),
    idleTimeoutMs: integer('idleTimeoutMs', options.idleTimeoutMs, DEFAULTS.idleTimeoutMs, 100, 86_400_000),
    staleTempMs: integer('staleTempMs', options.staleTempMs, DEFAULTS.staleTempMs, 0, 31_536_000_000),
    attest: options.attest,
  })
}

export type ResolvedClientOptions = ResolvedCommon &
  Readonly<{ address: string | TransportAddress; verifier: ServerVerifier; connectTimeoutMs: number }>

export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  if (!options.address) throw new InvalidOptionError('address is required')
  if (!options.verifier)
    throw new InvalidOptionError('verifier is required (for example pinnedKeyVerifier([...]))')
  return Object.freeze({
    ...resolveCommon(options),
    address: options.address,
    verifier: options.verifier,
    connectTimeoutMs: integer(
      'connectTimeoutMs',
      options.connectTimeoutMs,
      DEFAULTS.connectTimeoutMs,
      1,
      600_000,
    ),
  })
}
