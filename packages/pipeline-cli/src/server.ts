import { X509Certificate } from 'node:crypto'
import { lstat, mkdir } from 'node:fs/promises'
import type net from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Logger } from '@enclave/logger'
import { silentLogger } from '@enclave/logger'
import { listen, serverAddressOf, type TransportAddress } from '@enclave/vsock-transport'
import { AtomicFile, sweepStaleTemps } from './atomic.js'
import {
  AttestationFailedError,
  BusyError,
  ConnectionLostError,
  isPipelineError,
  ProtocolViolationError,
  UnauthorizedError,
  WrongTypeError,
} from './errors.js'
import { serveRun } from './exec.js'
import { type ResolvedServerOptions, resolveServerOptions, type ServerOptions } from './options.js'
import { Roots } from './paths.js'
import { peerFingerprint, secureServer, serverContext } from './tls.js'
import {
  MAX_FILE_SIZE,
  openForSend,
  receiveFileBody,
  receiveTree,
  sendFileBody,
  sendTree,
} from './transfer.js'
import { Channel, type Control, field } from './wire.js'

export interface ServerStats {
  /** Sessions being served now (after authentication). */
  active: number
  /** Sessions served since start. */
  total: number
  /** Connections refused: failed handshake, unknown key, busy. */
  refused: number
  /** Sessions that ended with an error. */
  failed: number
}

export interface PipelineServer {
  /** The bound address (with the real port when listening on port 0). */
  readonly address: TransportAddress | undefined
  /** This server's key fingerprint, for clients to pin. */
  readonly fingerprint: string
  stats(): ServerStats
  /** Stops accepting, lets running sessions finish for up to `graceMs`, then cuts them. */
  close(options?: { graceMs?: number }): Promise<void>
}

type State = 'listening' | 'closing' | 'closed'

/**
 * Starts a pipeline server: every connection is TLS 1.3 with a client certificate whose key must
 * be in `authorizedKeys`; then one request per connection (run, send-file, recv-file, send-dir,
 * recv-dir). A bad message ends only its own session.
 */
export async function createPipelineServer(
  options: ServerOptions,
  { logger = silentLogger }: { logger?: Logger } = {},
): Promise<PipelineServer> {
  const resolved = resolveServerOptions(options)
  const log = logger.child({ component: 'pipeline-server' })
  const roots = await Roots.create(resolved.roots, resolved.maxPathBytes)
  if (resolved.staleTempMs > 0 && roots.list.length > 0) {
    const sweep = await sweepStaleTemps(
      roots.list,
      Math.max(resolved.staleTempMs, 2 * resolved.idleTimeoutMs),
    )
    if (sweep.removed.length > 0 || sweep.truncated) {
      log.info({ removed: sweep.removed, truncated: sweep.truncated }, 'removed stale upload temp files')
    }
  }
  const context = serverContext(resolved.identity, resolved.ciphers)
  const spki = new X509Certificate(resolved.identity.cert).publicKey.export({ type: 'spki', format: 'der' })
  const sockets = new Set<net.Socket>()
  const stats: ServerStats = { active: 0, total: 0, refused: 0, failed: 0 }
  let state: State = 'listening'
  let idle: (() => void) | undefined

  const onConnection = (raw: net.Socket) => {
    // Handshakes cost CPU, so connections beyond twice the session limit are dropped unanswered.
    if (state !== 'listening' || sockets.size >= resolved.maxSessions * 2) {
      stats.refused++
      raw.destroy()
      return
    }
    sockets.add(raw)
    raw.on('error', () => undefined)
    raw.once('close', () => {
      sockets.delete(raw)
      if (sockets.size === 0) idle?.()
    })
    serveConnection(raw).catch((error: unknown) => {
      log.error({ err: error }, 'unexpected session failure')
      raw.destroy()
    })
  }

  const serveConnection = async (raw: net.Socket) => {
    let secure: TLSSocket
    try {
      secure = await secureServer(raw, { ...resolved, context })
    } catch (error) {
      stats.refused++
      log.warn({ err: error }, 'TLS handshake failed')
      raw.destroy()
      return
    }
    const channel = new Channel(secure, {
      maxChunk: resolved.maxChunkBytes,
      maxControl: resolved.maxControlBytes,
    })
    const fingerprint = peerFingerprint(secure)
    const session = log.child({ client: fingerprint ?? 'none' })
    if (!fingerprint || !resolved.authorizedKeys.has(fingerprint)) {
      stats.refused++
      session.warn({}, 'client key not authorized')
      await channel.fail(
        new UnauthorizedError(
          fingerprint
            ? `this server does not authorize client key ${fingerprint}; add it to the server's authorized-keys file`
            : 'the client presented no certificate; a client identity is required',
        ),
      )
      secure.destroySoon()
      return
    }
    if (stats.active >= resolved.maxSessions) {
      stats.refused++
      await channel.fail(
        new BusyError(`the server is serving its maximum of ${resolved.maxSessions} sessions; try again`),
      )
      secure.destroySoon()
      return
    }
    stats.active++
    stats.total++
    try {
      let request = await firstMessage(channel, resolved.handshakeTimeoutMs)
      if (request.type === 'attest') {
        await serveAttest(channel, request, resolved, spki)
        request = await firstMessage(channel, resolved.handshakeTimeoutMs)
      }
      session.info({ request: request.type }, 'session started')
      if (request.type !== 'run') {
        // A stalled transfer must not hold a session slot and a temp file forever.
        secure.setTimeout(resolved.idleTimeoutMs, () => {
          session.warn({ idleTimeoutMs: resolved.idleTimeoutMs }, 'transfer idle; closing')
          secure.destroy()
        })
      }
      await dispatch(channel, request, resolved, roots, session)
    } catch (error) {
      stats.failed++
      const typed = isPipelineError(error)
        ? error
        : new ProtocolViolationError(`the session failed: ${(error as Error).message}`)
      session.warn({ err: typed, code: typed.code }, 'session failed')
      if (!typed.remote && typed.code !== 'ENCLAVE_PIPELINE_CONNECTION_LOST') await channel.fail(typed)
    } finally {
      stats.active--
      secure.end()
      // A peer that never reads its last bytes must not hold the session forever.
      setTimeout(() => secure.destroy(), resolved.handshakeTimeoutMs).unref()
    }
  }

  const server = await listen(resolved.address, { dev: resolved.dev }, onConnection)
  const address = serverAddressOf(server)
  log.info(
    { address, fingerprint: resolved.identity.fingerprint, allowExec: resolved.allowExec },
    'listening',
  )

  return {
    address,
    fingerprint: resolved.identity.fingerprint,
    stats: () => ({ ...stats }),
    async close({ graceMs = 5000 } = {}) {
      if (state !== 'listening') return
      state = 'closing'
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      if (sockets.size > 0) {
        await new Promise<void>((resolve) => {
          idle = resolve
          setTimeout(resolve, graceMs).unref()
        })
        for (const socket of sockets) socket.destroy()
      }
      await closed
      state = 'closed'
    },
  }
}

async function serveAttest(
  channel: Channel,
  request: Control,
  options: ResolvedServerOptions,
  spki: Buffer,
): Promise<void> {
  const nonce = Buffer.from(field.string(request, 'nonce')!, 'base64')
  if (nonce.length === 0 || nonce.length > 512)
    throw new ProtocolViolationError('attest.nonce must be 1..512 bytes')
  if (!options.attest) {
    throw new AttestationFailedError('this server was started without attestation (listen --attest)')
  }
  let document: Uint8Array
  try {
    document = await options.attest({ nonce, publicKey: spki })
  } catch (error) {
    throw new AttestationFailedError(
      `the server could not get an attestation document: ${(error as Error).message}`,
      {
        cause: error,
      },
    )
  }
  await channel.sendControl({ type: 'attestation', document: Buffer.from(document).toString('base64') })
}

function firstMessage(channel: Channel, timeoutMs: number): Promise<Control> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new ConnectionLostError(`no request arrived within ${timeoutMs} ms`))
      channel.destroy()
    }, timeoutMs)
    channel.nextControl('a request').then(
      (message) => {
        clearTimeout(timer)
        resolve(message)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}

async function dispatch(
  channel: Channel,
  request: Control,
  options: ResolvedServerOptions,
  roots: Roots,
  logger: Logger,
): Promise<void> {
  switch (request.type) {
    case 'run':
      return serveRun(channel, request, options, logger)
    case 'send-file':
      return serveSendFile(channel, request, roots)
    case 'recv-file':
      return serveRecvFile(channel, request, roots, options)
    case 'send-dir':
      return serveSendDir(channel, request, roots, options)
    case 'recv-dir':
      return serveRecvDir(channel, request, roots, options)
    default:
      throw new ProtocolViolationError(`unknown request type ${JSON.stringify(request.type).slice(0, 64)}`)
  }
}

async function serveSendFile(channel: Channel, request: Control, roots: Roots): Promise<void> {
  const requested = field.string(request, 'path')!
  const size = field.integer(request, 'size', 0, MAX_FILE_SIZE)!
  const mode = field.integer(request, 'mode', 0, 0o7777)!
  const { parent, name, path } = await roots.forWrite(requested)
  const existing = await lstat(path).catch(() => undefined)
  if (existing?.isDirectory()) throw new WrongTypeError(`${requested} is a folder on the server; name a file`)
  const file = await AtomicFile.create(parent, name)
  try {
    await channel.sendControl({ type: 'ready' })
  } catch (error) {
    await file.abort()
    throw error
  }
  const sha256 = await receiveFileBody(
    channel,
    file,
    { size, mode },
    { base: 0, total: size, listener: undefined },
  )
  await channel.sendControl({ type: 'done', size, sha256, path })
}

async function serveRecvFile(
  channel: Channel,
  request: Control,
  roots: Roots,
  options: ResolvedServerOptions,
): Promise<void> {
  const requested = field.string(request, 'path')!
  const real = await roots.forRead(requested)
  const file = await openForSend(real, requested)
  await channel.sendControl({ type: 'file', size: file.size, mode: file.mode })
  await sendFileBody(
    channel,
    file,
    options.maxChunkBytes,
    { base: 0, total: file.size, listener: undefined },
    requested,
  )
}

async function serveSendDir(
  channel: Channel,
  request: Control,
  roots: Roots,
  options: ResolvedServerOptions,
): Promise<void> {
  const requested = field.string(request, 'path')!
  const { path } = await roots.forWrite(requested)
  try {
    await mkdir(path, { mode: 0o755 })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  if (!(await lstat(path)).isDirectory())
    throw new WrongTypeError(`${requested} exists on the server and is not a folder`)
  const base = await Roots.create([path], options.maxPathBytes)
  await channel.sendControl({ type: 'ready' })
  const stats = await receiveTree(channel, base, options.maxPathBytes, undefined)
  await channel.sendControl({ type: 'done', ...stats })
}

async function serveRecvDir(
  channel: Channel,
  request: Control,
  roots: Roots,
  options: ResolvedServerOptions,
): Promise<void> {
  const requested = field.string(request, 'path')!
  const real = await roots.forRead(requested)
  if (!(await lstat(real)).isDirectory())
    throw new WrongTypeError(`${requested} is not a folder on the server`)
  await channel.sendControl({ type: 'ready' })
  await sendTree(channel, real, options.maxChunkBytes, undefined, undefined)
}
