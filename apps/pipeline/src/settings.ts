import { mkdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Nsm } from '@enclave/attestation'
import {
  AttestationFailedError,
  allOf,
  attestationVerifier,
  type ClientOptions,
  type Identity,
  InvalidOptionError,
  type Logger,
  loadAuthorizedKeys,
  loadDevIdentity,
  loadIdentity,
  MissingValueError,
  type PipelineConfig,
  pick,
  pinnedKeyVerifier,
  type ServerOptions,
  type ServerVerifier,
  userConfigDir,
} from '@enclave/pipeline-cli'

/** Flags every command that talks to a peer accepts. */
export interface ConnectionFlags {
  cid?: number
  port?: number
  addr?: string
  dev?: boolean
  identity?: string
  ciphers?: string
}

export interface ServerFlags extends ConnectionFlags {
  attest?: boolean
  authorizedKeys?: string
  root?: string[]
  allowExec?: boolean
  maxSessions?: number
}

export interface ClientFlags extends ConnectionFlags {
  attest?: boolean
  expectPcr?: string[]
  attestationRoot?: string
  serverKey?: string[]
  connectTimeout?: number
}

const MISSING_ADDRESS =
  'missing the server address: pass --addr URI (config key "addr"), or --cid and --port (config keys "cid" and "port")'

function devTransport(dev: boolean) {
  if (!dev) return undefined
  // vsock:// addresses become Unix sockets in a per-user folder, so dev mode needs no /dev/vsock.
  const dir = join(userConfigDir(), 'vsock')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  // The transport's own variable still picks the dev CID that `listen` on vsock://any uses.
  const cid = Number(process.env.ENCLAVE_VSOCK_DEV_CID)
  return Number.isSafeInteger(cid) && cid > 0 ? { dir, cid } : { dir }
}

async function identityFor(flags: ConnectionFlags, config: PipelineConfig, dev: boolean): Promise<Identity> {
  const path = flags.identity ?? config.identity
  if (path !== undefined) return loadIdentity(path)
  if (dev) return loadDevIdentity()
  throw new MissingValueError(
    'missing the identity: pass --identity PATH (config key "identity"), create one with `pipeline keygen --identity PATH`, or use --dev',
  )
}

export async function clientOptions(
  flags: ClientFlags,
  config: PipelineConfig,
  logger: Logger,
): Promise<ClientOptions> {
  const dev = flags.dev ?? config.dev ?? false
  const addr = flags.addr ?? config.addr
  let address: string
  if (addr !== undefined) address = addr
  else {
    const cid = flags.cid ?? config.cid
    const port = flags.port ?? config.port
    if (cid === undefined && port === undefined) throw new MissingValueError(MISSING_ADDRESS)
    address = `vsock://${pick(flags.cid, config.cid, { flag: '--cid', key: 'cid', what: 'the server CID' })}:${pick(flags.port, config.port, { flag: '--port', key: 'port', what: 'the server port' })}`
  }
  const identity = await identityFor(flags, config, dev)
  const pinned = flags.serverKey ?? config.server_key ?? []
  // In dev mode both ends use the same per-user identity, so the server must hold our own key.
  const keys = dev ? [...pinned, identity.fingerprint] : pinned
  const attest = flags.attest ?? config.attest ?? false
  if (keys.length === 0 && !attest) {
    throw new MissingValueError(
      'missing the server key to pin: pass --server-key sha256:... (config key "server_key"), or --attest (config key "attest"), or use --dev',
    )
  }
  const verifiers = keys.length > 0 ? [pinnedKeyVerifier(keys)] : []
  // Dev mode checks a dev-NSM attestation by default; --attest (or expected PCRs) makes it mandatory.
  const pcrs = parsePcrs(flags.expectPcr ?? config.expect_pcrs ?? [])
  const required = attest || Object.keys(pcrs).length > 0
  if (required || dev) verifiers.push(await attestationCheck(flags, config, { dev, required, pcrs }, logger))
  return {
    address,
    identity,
    verifier: allOf(verifiers),
    ...((flags.ciphers ?? config.ciphers) ? { ciphers: flags.ciphers ?? config.ciphers } : {}),
    ...((flags.connectTimeout ?? config.connect_timeout_ms)
      ? { connectTimeoutMs: flags.connectTimeout ?? config.connect_timeout_ms }
      : {}),
    dev: devTransport(dev) ?? false,
  }
}

export async function serverOptions(
  flags: ServerFlags,
  config: PipelineConfig,
  logger: Logger,
): Promise<ServerOptions> {
  const dev = flags.dev ?? config.dev ?? false
  const addr = flags.addr ?? config.addr
  let address: string
  if (addr !== undefined) address = addr
  else {
    const port = flags.port ?? config.port
    if (port === undefined) {
      throw new MissingValueError(
        'missing the address to listen on: pass --addr URI (config key "addr") or --port (config key "port")',
      )
    }
    address = `vsock://any:${port}`
  }
  const identity = await identityFor(flags, config, dev)
  const keysPath = flags.authorizedKeys ?? config.authorized_keys
  const authorized = keysPath !== undefined ? [...(await loadAuthorizedKeys(keysPath))] : []
  if (dev) authorized.push(identity.fingerprint)
  if (authorized.length === 0) {
    throw new MissingValueError(
      'missing the authorized client keys: pass --authorized-keys FILE (config key "authorized_keys"), or use --dev',
    )
  }
  const maxSessions = flags.maxSessions ?? config.max_sessions
  const attest = flags.attest ?? config.attest ?? false
  const attestFn = attest || dev ? await attestor(dev, attest, logger) : undefined
  return {
    ...(attestFn ? { attest: attestFn } : {}),
    address,
    identity,
    authorizedKeys: authorized,
    roots: flags.root ?? config.root ?? [],
    allowExec: flags.allowExec ?? config.allow_exec ?? false,
    ...(maxSessions !== undefined ? { maxSessions } : {}),
    ...((flags.ciphers ?? config.ciphers) ? { ciphers: flags.ciphers ?? config.ciphers } : {}),
    dev: devTransport(dev) ?? false,
  }
}

function parsePcrs(pairs: readonly string[]): Record<number, string> {
  const pcrs: Record<number, string> = {}
  for (const pair of pairs) {
    const match = /^(\d{1,2})=([0-9a-fA-F]{96})$/.exec(pair)
    if (!match) {
      throw new InvalidOptionError(
        `--expect-pcr expects INDEX=96 hex digits (config key expect_pcrs), got ${pair.slice(0, 40)}`,
      )
    }
    pcrs[Number(match[1])] = match[2]!
  }
  return pcrs
}

const DEV_WARNING = 'a dev NSM proves nothing about hardware; never use --dev in production'

/** What the client needs to check a document: the attestation package, loaded only when used. */
async function loadChecker(root: string | undefined, dev: boolean) {
  // A dynamic import: the package carries the NSM device addon and costs ~100 ms to load.
  const attestation = await import('@enclave/attestation')
  let roots: string[] | undefined
  if (root !== undefined) roots = [root]
  else if (dev) {
    // The per-user dev CA, created on first use (the listener normally created it already).
    const nsm = await attestation.createDevNsm()
    roots = [nsm.rootCertificatePem]
    await nsm.close()
  }
  const verifier = attestation.createAttestationVerifier({ ...(roots ? { roots } : {}), allowDebug: dev })
  const binding = (spki: Uint8Array) => attestation.taggedDigest(attestation.ATTESTED_TLS_BINDING_TAG, spki)
  return { verifier, binding }
}

/**
 * The client's attestation check: the document must chain to the root (AWS by default; the dev
 * NSM's in dev mode), carry our nonce, bind the server's TLS key (public_key, and the tagged
 * user_data of @enclave/attestation's attested TLS) and show the expected PCRs. In dev mode
 * without --attest, a dev NSM that cannot be loaded here falls back to the pinned dev key.
 */
async function attestationCheck(
  flags: ClientFlags,
  config: PipelineConfig,
  mode: { dev: boolean; required: boolean; pcrs: Record<number, string> },
  logger: Logger,
): Promise<ServerVerifier> {
  const { dev, required, pcrs } = mode
  const rootPath = flags.attestationRoot ?? config.attestation_root
  let root: string | undefined
  if (rootPath !== undefined) {
    try {
      root = await readFile(rootPath, 'utf8')
    } catch (error) {
      throw new InvalidOptionError(
        `cannot read --attestation-root ${rootPath} (config key attestation_root): ${(error as Error).message}`,
        { cause: error },
      )
    }
  }
  // Started now, so loading overlaps with connecting and the TLS handshake.
  const checker = loadChecker(root, dev)
  checker.catch(() => undefined)
  const pcrList = Object.keys(pcrs).join(', ')
  const description = `${dev ? 'dev-NSM ' : ''}attestation${pcrList ? ` with PCRs ${pcrList}` : ''}`
  const verifier = attestationVerifier(async (document, expected) => {
    const { verifier: documents, binding } = await checker
    documents.assert(document, {
      nonce: expected.nonce,
      publicKey: expected.publicKey,
      userData: binding(expected.publicKey),
      pcrs,
    })
  }, description)
  return {
    description,
    async verify(evidence) {
      let unavailable: Error | undefined
      await checker.catch((error: unknown) => {
        unavailable = error as Error
      })
      if (unavailable) {
        if (required || !dev) {
          throw new AttestationFailedError(
            `cannot check the server's attestation here: ${unavailable.message}`,
            { cause: unavailable },
          )
        }
        logger.warn(
          { trust: 'pinned-dev-key', reason: unavailable.message },
          'dev NSM unavailable: trusting the pinned dev key only (no attestation)',
        )
        return
      }
      await verifier.verify(evidence)
      logger.info(
        { trust: dev ? 'dev-nsm-attestation' : 'attestation', pcrs: Object.keys(pcrs).map(Number) },
        dev ? `server attested by the dev NSM (${DEV_WARNING})` : 'server attestation verified',
      )
    },
  }
}

/**
 * The server side: the NSM device inside an enclave, the dev NSM in dev mode. Documents bind the
 * TLS key twice: public_key, and user_data = SHA-384(ATTESTED_TLS_BINDING_TAG ‖ SPKI), the
 * domain-separated binding that another enclave service forwarding caller fields cannot forge.
 * In dev mode without --attest, a dev NSM that cannot be opened only disables attestation.
 */
async function attestor(
  dev: boolean,
  required: boolean,
  logger: Logger,
): Promise<NonNullable<ServerOptions['attest']> | undefined> {
  let nsm: Nsm
  let attestation: typeof import('@enclave/attestation')
  try {
    attestation = await import('@enclave/attestation')
    nsm = await attestation.openNsm(dev ? { mode: 'dev' } : {})
  } catch (error) {
    if (required || !dev) throw error
    logger.warn(
      { attest: false, reason: (error as Error).message },
      'dev NSM unavailable: not attesting; dev clients fall back to the pinned dev key',
    )
    return undefined
  }
  logger.info(
    { attest: dev ? 'dev-nsm' : 'nsm' },
    dev ? `attesting the TLS key with the dev NSM (${DEV_WARNING})` : 'attesting the TLS key with the NSM',
  )
  const { ATTESTED_TLS_BINDING_TAG, taggedDigest } = attestation
  return ({ nonce, publicKey }) =>
    nsm.getAttestationDocument({
      nonce,
      publicKey,
      userData: taggedDigest(ATTESTED_TLS_BINDING_TAG, publicKey),
    })
}
