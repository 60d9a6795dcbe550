import { mkdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  allOf,
  attestationVerifier,
  type ClientOptions,
  type Identity,
  InvalidOptionError,
  loadAuthorizedKeys,
  loadDevIdentity,
  loadIdentity,
  MissingValueError,
  type PipelineConfig,
  pick,
  pinnedKeyVerifier,
  type ServerOptions,
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

export async function clientOptions(flags: ClientFlags, config: PipelineConfig): Promise<ClientOptions> {
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
  if (keys.length === 0 && !(flags.attest ?? config.attest)) {
    throw new MissingValueError(
      'missing the server key to pin: pass --server-key sha256:... (config key "server_key"), or --attest (config key "attest"), or use --dev',
    )
  }
  const attest = flags.attest ?? config.attest ?? false
  const verifiers = keys.length > 0 ? [pinnedKeyVerifier(keys)] : []
  if (attest) verifiers.push(await attestationCheck(flags, config, dev))
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

export async function serverOptions(flags: ServerFlags, config: PipelineConfig): Promise<ServerOptions> {
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
  return {
    ...(attest ? { attest: await attestor(dev) } : {}),
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

/** The attestation check: roots (AWS by default; the dev NSM's in dev mode), key binding, nonce, PCRs. */
async function attestationCheck(flags: ClientFlags, config: PipelineConfig, dev: boolean) {
  // Loaded only when used: the attestation package carries the NSM device addon.
  const { createAttestationVerifier, createDevNsm } = await import('@enclave/attestation')
  const rootPath = flags.attestationRoot ?? config.attestation_root
  let roots: string[] | undefined
  if (rootPath !== undefined) roots = [await readFile(rootPath, 'utf8')]
  else if (dev) {
    const nsm = await createDevNsm()
    roots = [nsm.rootCertificatePem]
    await nsm.close()
  }
  const pcrs = parsePcrs(flags.expectPcr ?? config.expect_pcrs ?? [])
  const documents = createAttestationVerifier({ ...(roots ? { roots } : {}), allowDebug: dev })
  return attestationVerifier(
    (document, expected) =>
      documents.assert(document, { nonce: expected.nonce, publicKey: expected.publicKey, pcrs }),
    `attestation${Object.keys(pcrs).length ? ` with PCRs ${Object.keys(pcrs).join(', ')}` : ''}`,
  )
}

/** The server side: the NSM device inside an enclave, the dev NSM in dev mode. */
async function attestor(dev: boolean): Promise<NonNullable<ServerOptions['attest']>> {
  const { openNsm } = await import('@enclave/attestation')
  const nsm = await openNsm(dev ? { mode: 'dev' } : {})
  return (request) => nsm.getAttestationDocument(request)
}
