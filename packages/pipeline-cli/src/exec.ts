import { type ChildProcess, spawn } from 'node:child_process'
import { constants as osConstants } from 'node:os'
import { isAbsolute, resolve } from 'node:path'
import type { Writable } from 'node:stream'
import type { Logger } from '@enclave/logger'
import {
  CommandNotFoundError,
  ExecDisabledError,
  LimitExceededError,
  ProtocolViolationError,
  SpawnFailedError,
} from './errors.js'
import type { ResolvedServerOptions } from './options.js'
import { type Channel, type Control, field } from './wire.js'

/** Signals a client may forward to its command (Ctrl-C and friends); anything else is refused. */
export const FORWARDABLE_SIGNALS = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGKILL',
  'SIGUSR1',
  'SIGUSR2',
] as const

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const MAX_ENV = 256
const MAX_ARGS = 4096
/** The only variables the command inherits from the server; the client adds its own with --env. */
const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'USER', 'LOGNAME', 'SHELL', 'TMPDIR']

interface RunRequest {
  file: string
  args: string[]
  env: Record<string, string>
  cwd: string | undefined
  timeoutMs: number | undefined
  stdin: boolean
  noWait: boolean
}

function parseRunRequest(message: Control, options: ResolvedServerOptions): RunRequest {
  const argv = field.stringArray(message, 'argv', MAX_ARGS)
  const command = field.string(message, 'command', true)
  if ((argv === undefined) === (command === undefined)) {
    throw new ProtocolViolationError('run needs exactly one of argv and command')
  }
  if (argv !== undefined && argv.length === 0) throw new ProtocolViolationError('run.argv is empty')
  const rawEnv = message.env ?? {}
  if (typeof rawEnv !== 'object' || rawEnv === null || Array.isArray(rawEnv)) {
    throw new ProtocolViolationError('run.env must be an object of strings')
  }
  const env: Record<string, string> = {}
  const entries = Object.entries(rawEnv)
  if (entries.length > MAX_ENV) throw new LimitExceededError(`run.env has more than ${MAX_ENV} variables`)
  for (const [name, value] of entries) {
    if (!ENV_NAME.test(name) || typeof value !== 'string' || value.includes('\0')) {
      throw new ProtocolViolationError(`run.env: ${JSON.stringify(name).slice(0, 64)} is not NAME=string`)
    }
    env[name] = value
  }
  const cwd = field.string(message, 'cwd', true)
  const parts = [...(argv ?? []), command ?? '', cwd ?? '', ...entries.flat()]
  if (parts.some((part) => part.includes('\0')))
    throw new ProtocolViolationError('run arguments may not contain NUL')
  const bytes = parts.reduce((sum, part) => sum + Buffer.byteLength(part) + 1, 0)
  if (bytes > options.maxCommandBytes) {
    throw new LimitExceededError(
      `the command, its environment and cwd take ${bytes} bytes, over the server's limit of ${options.maxCommandBytes}`,
    )
  }
  return {
    file: command !== undefined ? '/bin/sh' : argv![0]!,
    args: command !== undefined ? ['-c', command] : argv!.slice(1),
    env,
    cwd,
    timeoutMs: field.integer(message, 'timeoutMs', 1, 2 ** 31 - 1, true),
    stdin: field.boolean(message, 'stdin'),
    noWait: field.boolean(message, 'noWait'),
  }
}

function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const name of INHERITED_ENV) {
    const value = process.env[name]
    if (value !== undefined) env[name] = value
  }
  env.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  return env
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try {
    // The command runs in its own process group (detached), so this reaches its children too.
    process.kill(-child.pid, signal)
  } catch {
    // Already gone.
  }
}

function spawnChild(request: RunRequest, roots: readonly string[]): Promise<ChildProcess> {
  const cwd =
    request.cwd === undefined
      ? (roots[0] ?? process.cwd())
      : isAbsolute(request.cwd)
        ? request.cwd
        : resolve(roots[0] ?? process.cwd(), request.cwd)
  const child = spawn(request.file, request.args, {
    cwd,
    env: { ...baseEnv(), ...request.env },
    stdio: [
      request.stdin ? 'pipe' : 'ignore',
      request.noWait ? 'ignore' : 'pipe',
      request.noWait ? 'ignore' : 'pipe',
    ],
    detached: true,
  })
  return new Promise((resolvePromise, reject) => {
    child.once('spawn', () => {
      child.off('error', onError)
      resolvePromise(child)
    })
    const onError = (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'ENOENT'
          ? new CommandNotFoundError(
              `cannot run ${request.file}: not found in PATH (or the working folder ${cwd} does not exist)`,
              { cause: error },
            )
          : new SpawnFailedError(`cannot run ${request.file}: ${error.message}`, { cause: error }),
      )
    }
    child.once('error', onError)
  })
}

function write(stream: Writable, bytes: Buffer): Promise<void> {
  return new Promise((resolvePromise) => {
    if (stream.write(bytes)) resolvePromise()
    else {
      const done = () => {
        stream.off('drain', done)
        stream.off('close', done)
        resolvePromise()
      }
      stream.on('drain', done)
      stream.on('close', done)
    }
  })
}

/**
 * Serves one `run` request: spawns the command in its own process group (no shell unless the
 * client sent `command`, which runs under `/bin/sh -c`), streams stdout and stderr as separate
 * data frames with backpressure, feeds stdin frames to the child, forwards allowed signals, and
 * ends with `{type:'exit', code, signal, timedOut}`. If the client leaves, the group is killed.
 */
export async function serveRun(
  channel: Channel,
  message: Control,
  options: ResolvedServerOptions,
  logger: Logger,
): Promise<void> {
  if (!options.allowExec) {
    throw new ExecDisabledError('this server was started without --allow-exec, so it does not run commands')
  }
  const request = parseRunRequest(message, options)
  const child = await spawnChild(request, options.roots)
  logger.info({ pid: child.pid, file: request.file, argc: request.args.length }, 'command started')
  await channel.sendControl({ type: 'started', pid: child.pid })
  if (request.noWait) {
    child.unref()
    channel.end()
    return
  }

  let timedOut = false
  let killTimer: NodeJS.Timeout | undefined
  const terminate = () => {
    killGroup(child, 'SIGTERM')
    killTimer ??= setTimeout(() => killGroup(child, 'SIGKILL'), options.killGraceMs)
  }
  const timeout =
    request.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          terminate()
        }, request.timeoutMs)

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolvePromise) => {
    child.once('close', (code, signal) => resolvePromise({ code, signal }))
  })
  let clientGone = false
  const pump = (stream: NodeJS.ReadableStream | null, name: 'stdout' | 'stderr') => {
    stream?.on('data', (chunk: Buffer) => {
      stream.pause()
      channel.sendData(name, chunk).then(
        () => stream.resume(),
        () => {
          clientGone = true
          terminate()
          stream.resume()
        },
      )
    })
  }
  pump(child.stdout, 'stdout')
  pump(child.stderr, 'stderr')

  // Incoming frames: stdin data, stdin-end, signal. Runs until the client closes or misbehaves.
  const reading = (async () => {
    for (;;) {
      const frame = await channel.next()
      if (!frame)
        throw new ProtocolViolationError('the client closed the connection before the command ended')
      if (frame.kind === 'data') {
        if (frame.stream !== 'stdin' || !child.stdin) {
          throw new ProtocolViolationError(`unexpected ${frame.stream} data during run`)
        }
        await write(child.stdin, frame.bytes)
      } else if (frame.message.type === 'stdin-end') {
        child.stdin?.end()
      } else if (frame.message.type === 'signal') {
        const signal = field.string(frame.message, 'signal')! as NodeJS.Signals
        if (!(FORWARDABLE_SIGNALS as readonly string[]).includes(signal)) {
          throw new ProtocolViolationError(`signal ${signal.slice(0, 16)} may not be forwarded`)
        }
        killGroup(child, signal)
      } else {
        throw new ProtocolViolationError(`unexpected ${frame.message.type.slice(0, 32)} message during run`)
      }
    }
  })()
  const readFailure = reading.then(
    () => undefined,
    (error: unknown) => error,
  )
  child.stdin?.on('error', () => undefined) // EPIPE when the command does not read its stdin.

  const outcome = await Promise.race([
    exited.then((result) => ({ result })),
    readFailure.then((error) => ({ error })),
  ])
  if ('error' in outcome) {
    clientGone = true
    terminate()
    await exited
  }
  if (timeout) clearTimeout(timeout)
  if (killTimer) clearTimeout(killTimer)
  const { code, signal } = await exited
  logger.info({ pid: child.pid, code, signal, timedOut }, 'command ended')
  if ('error' in outcome) throw outcome.error
  if (!clientGone) {
    await channel.sendControl({ type: 'exit', code, signal, timedOut })
    channel.end()
  }
}

/** The conventional exit status for a death by `signal`: 128 + its number. */
export function exitCodeForSignal(signal: string): number {
  const number = (osConstants.signals as Record<string, number>)[signal]
  return 128 + (number ?? 0)
}
