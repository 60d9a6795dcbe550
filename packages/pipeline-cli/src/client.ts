import { lstat, mkdir } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '@enclave/logger'
import { silentLogger } from '@enclave/logger'
import { connect } from '@enclave/vsock-transport'
import { AtomicFile } from './atomic.js'
import {
  AbortedError,
  ConnectionLostError,
  fsError,
  HandshakeFailedError,
  isPipelineError,
  type PipelineError,
  ProtocolViolationError,
  WrongTypeError,
} from './errors.js'
import type { FORWARDABLE_SIGNALS } from './exec.js'
import { fingerprintOfSpki } from './identity.js'
import { type ClientOptions, resolveClientOptions } from './options.js'
import { Roots } from './paths.js'
import { secureClient } from './tls.js'
import {
  MAX_FILE_SIZE,
  openForSend,
  type ProgressListener,
  receiveFileBody,
  receiveTree,
  sendFileBody,
  sendTree,
  type TreeStats,
  treeSize,
} from './transfer.js'
import { Channel, type Control, field, throwIfError } from './wire.js'

export interface RunRequest {
  /** The program and its arguments, run without a shell. */
  argv?: readonly string[]
  /** A shell command line, run with `/bin/sh -c`. */
  command?: string
  /** Variables added to the command's environment (the client's own environment is never sent). */
  env?: Readonly<Record<string, string>>
  /** Working folder on the server (relative: from the server's first root). */
  cwd?: string
  /** Kill the command (SIGTERM, then SIGKILL) after this many ms. */
  timeoutMs?: number
  /** Return once the command started, with its PID, and leave it running. */
  noWait?: boolean
}

export interface RunIo {
  /** Sent to the command's stdin; when absent the command's stdin is /dev/null. */
  stdin?: Readable
  stdout?: Writable
  stderr?: Writable
  signal?: AbortSignal
  /** Called once the command runs; `kill` forwards a signal (SIGINT, SIGTERM, ...) to it. */
  onStarted?: (command: RunningCommand) => void
}

export interface RunningCommand {
  readonly pid: number
  kill(signal: (typeof FORWARDABLE_SIGNALS)[number]): void
}

export interface RunResult {
  pid: number
  /** The exit status; undefined when the command was killed by a signal or with noWait. */
  code: number | undefined
  /** The signal that killed the command, if any. */
  signal: string | undefined
  timedOut: boolean
}

export interface TransferOptions {
  onProgress?: ProgressListener
  signal?: AbortSignal
}

export interface FileResult {
  size: number
  sha256: string
}

export interface PipelineClient {
  run(request: RunRequest, io?: RunIo): Promise<RunResult>
  sendFile(localPath: string, remotePath: string, options?: TransferOptions): Promise<FileResult>
  recvFile(remotePath: string, localPath: string, options?: TransferOptions): Promise<FileResult>
  sendDir(localDir: string, remoteDir: string, options?: TransferOptions): Promise<TreeStats>
  recvDir(remoteDir: string, localDir: string, options?: TransferOptions): Promise<TreeStats>
}

/**
 * A client for a pipeline server. Each call opens its own connection: transport connect, TLS 1.3
 * with this client's certificate, then the server check by `verifier` before anything is sent.
 */
export function createPipelineClient(
  options: ClientOptions,
  { logger = silentLogger }: { logger?: Logger } = {},
): PipelineClient {
  const resolved = resolveClientOptions(options)
  const log = logger.child({ component: 'pipeline-client' })

  const open = async (signal: AbortSignal | undefined): Promise<Channel> => {
    if (signal?.aborted) throw new AbortedError('aborted before connecting')
    const raw = await connect(resolved.address, {
      timeoutMs: resolved.connectTimeoutMs,
      dev: resolved.dev,
      ...(signal ? { signal } : {}),
    })
    const secure = await secureClient(raw, resolved).catch((error: unknown) => {
      raw.destroy()
      throw error
    })
    const channel = new Channel(secure, {
      maxChunk: resolved.maxChunkBytes,
      maxControl: resolved.maxControlBytes,
    })
    const cert = secure.getPeerX509Certificate()
    try {
      if (!cert) throw new HandshakeFailedError('the server presented no certificate')
      const spki = cert.publicKey.export({ type: 'spki', format: 'der' })
      await resolved.verifier.verify({
        fingerprint: fingerprintOfSpki(spki),
        spki,
        attest: (nonce) => requestAttestation(channel, nonce),
      })
    } catch (error) {
      secure.destroy()
      throw error
    }
    log.debug({ address: resolved.address }, 'connected')
    if (signal) {
      const onAbort = () => channel.destroy()
      signal.addEventListener('abort', onAbort, { once: true })
      secure.once('close', () => signal.removeEventListener('abort', onAbort))
    }
    return channel
  }

  /** Runs `work`, but if the server reports an error meanwhile, that error wins. */
  const withServerErrors = async <T>(reply: Promise<Control>, work: () => Promise<T>): Promise<T> => {
    let replyError: unknown
    const failed = reply.then(
      () => new Promise<never>(() => undefined),
      (error: unknown) => {
        replyError = error
        throw error
      },
    )
    failed.catch(() => undefined)
    try {
      return await Promise.race([work(), failed])
    } catch (error) {
      // A server that fails (no space, refused path) reports why and closes; when our send notices
      // the close first, the report is usually already on its way and explains more.
      if (
        replyError === undefined &&
        isPipelineError(error) &&
        error.code === 'ENCLAVE_PIPELINE_CONNECTION_LOST'
      ) {
        const timer = new AbortController()
        await Promise.race([
          reply.catch(() => undefined),
          sleep(2000, undefined, { signal: timer.signal }).catch(() => undefined),
        ])
        timer.abort()
      }
      throw replyError ?? error
    }
  }

  const finish = (channel: Channel, error: unknown, signal: AbortSignal | undefined): PipelineError => {
    channel.destroy()
    if (signal?.aborted) return new AbortedError('the operation was aborted', { cause: error })
    if (isPipelineError(error)) return error
    return new ConnectionLostError(`the connection failed: ${(error as Error).message}`, { cause: error })
  }

  return {
    async run(request, io = {}) {
      const channel = await open(io.signal)
      try {
        await channel.sendControl({
          type: 'run',
          ...(request.argv ? { argv: [...request.argv] } : {}),
          ...(request.command !== undefined ? { command: request.command } : {}),
          ...(request.env ? { env: { ...request.env } } : {}),
          ...(request.cwd !== undefined ? { cwd: request.cwd } : {}),
          ...(request.timeoutMs !== undefined ? { timeoutMs: request.timeoutMs } : {}),
          stdin: io.stdin !== undefined && !request.noWait,
          noWait: request.noWait === true,
        })
        const started = await channel.nextControl('the command to start')
        if (started.type !== 'started')
          throw new ProtocolViolationError(`expected started, got ${started.type}`)
        const pid = field.integer(started, 'pid', 0, 2 ** 31)!
        if (request.noWait) {
          channel.end()
          return { pid, code: undefined, signal: undefined, timedOut: false }
        }
        io.onStarted?.({
          pid,
          kill: (name) => {
            channel.sendControl({ type: 'signal', signal: name }).catch(() => undefined)
          },
        })
        const pumpStdin = io.stdin ? forwardStdin(channel, io.stdin) : undefined
        pumpStdin?.catch(() => undefined)
        for (;;) {
          const frame = await channel.next()
          if (!frame) throw new ConnectionLostError('the connection closed before the command ended')
          if (frame.kind === 'data') {
            const target =
              frame.stream === 'stdout' ? io.stdout : frame.stream === 'stderr' ? io.stderr : undefined
            if (frame.stream !== 'stdout' && frame.stream !== 'stderr') {
              throw new ProtocolViolationError(`unexpected ${frame.stream} data from the server`)
            }
            if (target) await writeTo(target, frame.bytes)
            continue
          }
          throwIfError(frame.message)
          if (frame.message.type !== 'exit')
            throw new ProtocolViolationError(`unexpected ${frame.message.type}`)
          const code = frame.message.code
          const signal = frame.message.signal
          channel.end()
          io.stdin?.unpipe?.()
          return {
            pid,
            code: typeof code === 'number' ? code : undefined,
            signal: typeof signal === 'string' ? signal : undefined,
            timedOut: frame.message.timedOut === true,
          }
        }
      } catch (error) {
        throw finish(channel, error, io.signal)
      }
    },

    async sendFile(localPath, remotePath, { onProgress, signal } = {}) {
      const file = await openForSend(localPath)
      let channel: Channel
      try {
        channel = await open(signal)
      } catch (error) {
        await file.handle.close()
        throw error
      }
      try {
        await channel.sendControl({ type: 'send-file', path: remotePath, size: file.size, mode: file.mode })
        const ready = await channel.nextControl('the server to accept the file')
        if (ready.type !== 'ready') throw new ProtocolViolationError(`expected ready, got ${ready.type}`)
        const reply = channel.nextControl('the server to confirm the file')
        const sha256 = await withServerErrors(reply, () =>
          sendFileBody(
            channel,
            file,
            resolved.maxChunkBytes,
            { base: 0, total: file.size, listener: onProgress },
            localPath,
          ),
        )
        const done = await reply
        if (done.type !== 'done' || done.sha256 !== sha256) {
          throw new ProtocolViolationError(
            `expected done with SHA-256 ${sha256}, got ${JSON.stringify(done).slice(0, 200)}`,
          )
        }
        channel.end()
        return { size: file.size, sha256 }
      } catch (error) {
        await file.handle.close().catch(() => undefined)
        throw finish(channel, error, signal)
      }
    },

    async recvFile(remotePath, localPath, { onProgress, signal } = {}) {
      const destination = resolve(localPath)
      const existing = await lstat(destination).catch(() => undefined)
      if (existing?.isDirectory())
        throw new WrongTypeError(`${localPath} is a folder; name the file to write`)
      try {
        await mkdir(dirname(destination), { recursive: true })
      } catch (error) {
        throw fsError(error, dirname(destination), 'creating the folder')
      }
      const channel = await open(signal)
      try {
        await channel.sendControl({ type: 'recv-file', path: remotePath })
        const header = await channel.nextControl('the file header')
        if (header.type !== 'file') throw new ProtocolViolationError(`expected file, got ${header.type}`)
        const size = field.integer(header, 'size', 0, MAX_FILE_SIZE)!
        const mode = field.integer(header, 'mode', 0, 0o7777)!
        const file = await AtomicFile.create(dirname(destination), basename(destination))
        const sha256 = await receiveFileBody(
          channel,
          file,
          { size, mode },
          { base: 0, total: size, listener: onProgress },
        )
        channel.end()
        return { size, sha256 }
      } catch (error) {
        throw finish(channel, error, signal)
      }
    },

    async sendDir(localDir, remoteDir, { onProgress, signal } = {}) {
      const stat = await lstat(localDir).catch((error: unknown) => {
        throw fsError(error, localDir, 'reading')
      })
      if (!stat.isDirectory()) throw new WrongTypeError(`${localDir} is not a folder`)
      const total = onProgress ? await treeSize(localDir) : undefined
      const channel = await open(signal)
      try {
        await channel.sendControl({ type: 'send-dir', path: remoteDir })
        const ready = await channel.nextControl('the server to accept the folder')
        if (ready.type !== 'ready') throw new ProtocolViolationError(`expected ready, got ${ready.type}`)
        const reply = channel.nextControl('the server to confirm the folder')
        const stats = await withServerErrors(reply, () =>
          sendTree(channel, localDir, resolved.maxChunkBytes, onProgress, total),
        )
        const done = await reply
        if (done.type !== 'done') throw new ProtocolViolationError(`expected done, got ${done.type}`)
        channel.end()
        return stats
      } catch (error) {
        throw finish(channel, error, signal)
      }
    },

    async recvDir(remoteDir, localDir, { onProgress, signal } = {}) {
      const destination = resolve(localDir)
      try {
        await mkdir(destination, { recursive: true })
      } catch (error) {
        throw fsError(error, localDir, 'creating the folder')
      }
      const base = await Roots.create([destination], resolved.maxPathBytes)
      const channel = await open(signal)
      try {
        await channel.sendControl({ type: 'recv-dir', path: remoteDir })
        const ready = await channel.nextControl('the server to send the folder')
        if (ready.type !== 'ready') throw new ProtocolViolationError(`expected ready, got ${ready.type}`)
        const stats = await receiveTree(channel, base, resolved.maxPathBytes, onProgress)
        channel.end()
        return stats
      } catch (error) {
        throw finish(channel, error, signal)
      }
    },
  }
}

async function forwardStdin(channel: Channel, stdin: Readable): Promise<void> {
  for await (const chunk of stdin) {
    await channel.sendData('stdin', typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
  }
  await channel.sendControl({ type: 'stdin-end' })
}

function writeTo(stream: Writable, bytes: Buffer): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    if (stream.write(bytes)) resolvePromise()
    else {
      const done = (error?: Error) => {
        stream.off('drain', onDrain)
        stream.off('error', done)
        if (error) reject(error)
        else resolvePromise()
      }
      const onDrain = () => done()
      stream.on('drain', onDrain)
      stream.on('error', done)
    }
  })
}

async function requestAttestation(channel: Channel, nonce: Uint8Array): Promise<Uint8Array> {
  await channel.sendControl({ type: 'attest', nonce: Buffer.from(nonce).toString('base64') })
  const reply = await channel.nextControl('the attestation document')
  if (reply.type !== 'attestation')
    throw new ProtocolViolationError(`expected attestation, got ${reply.type}`)
  return Buffer.from(field.string(reply, 'document')!, 'base64')
}
