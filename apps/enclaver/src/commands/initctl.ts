import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  type ControlClient,
  ControlError,
  type ControlRequest,
  type ControlResponse,
  connectControl,
  type ServiceStatus,
} from '@enclave/supervisor'
import type { Command } from 'commander'
import type { CommandContext } from '../context.js'

/** odyn.yaml's `control.port` default (the supervisor's `vsock://any:9001`). */
export const DEFAULT_CONTROL_PORT = 9001
/** Most the supervisor returns per `logs` request. */
const LOG_BYTES = 32 * 1024
const FOLLOW_INTERVAL_MS = 1000

interface InitctlOptions {
  addr?: string
  cid?: string
  port: string
  keyFile: string
  devDir?: string
  json?: boolean
  timeoutMs: string
}

/** The supervisor answered, but refused or failed the command (unknown service, spawn failure…): exit 1. */
class InitctlCommandError extends Error {
  readonly code = 'ENCLAVE_ENCLAVER_INITCTL_FAILED'
  constructor(message: string) {
    super(message)
    this.name = 'InitctlCommandError'
  }
}

/**
 * `enclaver initctl`: the client of odyn's control interface (list, status, start, stop, restart,
 * logs of the services in odyn.yaml), mutually authenticated with the key file odyn.yaml's
 * `control.key_file` names. Exit codes: 0 ok, 1 the command failed, 2 usage, 8 cannot connect or
 * authenticate (ENCLAVE_SUPERVISOR_CONTROL).
 */
export function registerInitctl(program: Command, ctx: CommandContext): void {
  const initctl = program
    .command('initctl')
    .description("control odyn's services in a running enclave (needs odyn.yaml `control` and its key)")
    .option('--addr <uri>', 'the control address, e.g. vsock://16:9001 (instead of --cid/--port)')
    .option('--cid <cid>', "the enclave's CID (nitro-cli describe-enclaves: EnclaveCID)")
    .option('--port <port>', "odyn.yaml's control.port", String(DEFAULT_CONTROL_PORT))
    .option(
      '--key-file <file>',
      "the key odyn.yaml's control.key_file names (its bytes are the key)",
      'control.key',
    )
    .option(
      '--dev-dir <dir>',
      'vsock dev mode: the folder of emulated sockets (default: $ENCLAVE_VSOCK_DEV_DIR)',
    )
    .option('--timeout-ms <ms>', 'connect and handshake timeout', '5000')
    .option('--json', 'print JSON (one document; JSON lines with logs --follow)')

  const act =
    (build: (...args: string[]) => ControlRequest | 'logs') =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command
      const names = args.filter((a): a is string => typeof a === 'string')
      await execute(cmd, build(...names), ctx)
    }

  initctl
    .command('list')
    .description('every service with its state')
    .action(act(() => ({ op: 'list' })))
  for (const op of ['status', 'start', 'stop', 'restart'] as const) {
    initctl
      .command(op)
      .description(
        op === 'status' ? "a service's state" : `${op} a service, then print its state (waits for it)`,
      )
      .argument('<name>', 'the service (odyn.yaml services[].name)')
      .action(act((name) => ({ op, name: name as string })))
  }
  initctl
    .command('logs')
    .description("a service's recent output (the lines odyn prefixed with [NAME]); without NAME: all")
    .argument('[name]', 'the service')
    .option('-f, --follow', 'keep printing new lines until interrupted')
    .action(act(() => 'logs'))
}

async function execute(cmd: Command, request: ControlRequest | 'logs', ctx: CommandContext): Promise<void> {
  const options = cmd.optsWithGlobals<InitctlOptions & { follow?: boolean }>()
  const address = controlAddress(cmd, options)
  const timeoutMs = Number(options.timeoutMs)
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
    cmd.error(`error: --timeout-ms must be a positive integer (ms), got "${options.timeoutMs}"`, {
      exitCode: 2,
    })
  const dev = options.devDir ? { dir: resolve(options.devDir) } : undefined
  const keyPath = resolve(options.keyFile)
  let key: Buffer
  try {
    key = await readFile(keyPath)
  } catch (cause) {
    throw new ControlError(
      `cannot read the control key ${keyPath} (${(cause as NodeJS.ErrnoException).code ?? cause}): pass --key-file with the file odyn.yaml's control.key_file names`,
      { cause },
    )
  }
  let client: ControlClient
  try {
    client = await connectControl(address, key, { dev, timeoutMs })
  } catch (cause) {
    if (cause instanceof ControlError) throw cause
    throw new ControlError(
      `cannot connect to the control interface at ${address}: ${(cause as Error).message} (is the enclave running with odyn.yaml \`control\` enabled?)`,
      { cause },
    )
  }
  ctx.logger.debug({ address }, 'control interface authenticated')
  const onAbort = () => client.close()
  ctx.signal.addEventListener('abort', onAbort, { once: true })
  try {
    if (request === 'logs') await logs(client, cmd.args[0], options, ctx)
    else print(ctx, options, request, await ask(client, request, options, ctx))
  } finally {
    ctx.signal.removeEventListener('abort', onAbort)
    client.close()
  }
}

function controlAddress(cmd: Command, options: InitctlOptions): string {
  if (options.addr !== undefined && options.cid !== undefined)
    cmd.error('error: give either --addr or --cid (with --port), not both', { exitCode: 2 })
  let address = options.addr
  if (address === undefined) {
    if (options.cid === undefined)
      cmd.error("error: give --cid (the enclave's CID) or --addr (e.g. vsock://16:9001)", { exitCode: 2 })
    if (!/^\d+$/.test(options.cid) || !/^\d+$/.test(options.port))
      cmd.error('error: --cid and --port must be non-negative integers', { exitCode: 2 })
    address = `vsock://${options.cid}:${options.port}`
  }
  // CIDs 0–3 are the hypervisor, local and host: never the enclave (dev mode maps them to files).
  const cid = /^vsock:\/\/(\d+):/.exec(address)?.[1]
  if (cid !== undefined && Number(cid) < 4 && !options.devDir && !process.env.ENCLAVE_VSOCK_DEV_DIR)
    cmd.error(`error: CID ${cid} is not an enclave (CIDs 0-3 are reserved); give the enclave's CID`, {
      exitCode: 2,
    })
  return address
}

async function ask(
  client: ControlClient,
  request: ControlRequest,
  options: InitctlOptions,
  ctx: CommandContext,
): Promise<ControlResponse & { ok: true }> {
  let response: ControlResponse
  try {
    response = await client.request(request)
  } catch (cause) {
    if (ctx.signal.aborted) throw cause
    throw cause instanceof ControlError
      ? cause
      : new ControlError(`the control connection failed: ${(cause as Error).message}`, { cause })
  }
  if (!response.ok) {
    if (options.json) ctx.out(`${JSON.stringify(response)}\n`)
    throw new InitctlCommandError(`${request.op} failed: ${response.error}`)
  }
  return response
}

function print(
  ctx: CommandContext,
  options: InitctlOptions,
  request: ControlRequest,
  response: ControlResponse & { ok: true },
): void {
  if (request.op === 'list') {
    const services = response.services ?? []
    if (options.json) ctx.out(`${JSON.stringify({ services }, null, 2)}\n`)
    else ctx.out(table(services))
    return
  }
  const service = response.service
  if (!service) throw new InitctlCommandError(`${request.op}: the supervisor sent no service state`)
  if (options.json) ctx.out(`${JSON.stringify(service, null, 2)}\n`)
  else ctx.out(`${describe(service)}\n`)
}

function lastExit(s: ServiceStatus): string {
  if (!s.lastExit) return '-'
  return s.lastExit.signal ? `signal ${s.lastExit.signal}` : `code ${s.lastExit.code}`
}

function describe(s: ServiceStatus): string {
  const pid = s.pid !== undefined ? ` (pid ${s.pid})` : ''
  return `${s.name}: ${s.state}${pid}; restarts ${s.restarts}; restart policy ${s.restart}; last exit ${lastExit(s)}`
}

function table(services: readonly ServiceStatus[]): string {
  if (services.length === 0) return 'no services (odyn.yaml defines none)\n'
  const rows = [
    ['NAME', 'STATE', 'PID', 'RESTARTS', 'POLICY', 'LAST EXIT'],
    ...services.map((s) => [
      s.name,
      s.state,
      String(s.pid ?? '-'),
      String(s.restarts),
      s.restart,
      lastExit(s),
    ]),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows
    .map(
      (r) =>
        `${r
          .map((c, i) => c.padEnd(widths[i]!))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('')
}

async function logs(
  client: ControlClient,
  name: string | undefined,
  options: InitctlOptions & { follow?: boolean },
  ctx: CommandContext,
): Promise<void> {
  if (name !== undefined) {
    const { services = [] } = await ask(client, { op: 'list' }, options, ctx)
    if (!services.some((s) => s.name === name)) {
      if (options.json) ctx.out(`${JSON.stringify({ ok: false, error: `no service named "${name}"` })}\n`)
      throw new InitctlCommandError(`logs failed: no service named "${name}"`)
    }
  }
  // Service lines carry odyn's "[NAME] " prefix in the shared log ring; the app's carry none.
  const prefix = name === undefined ? undefined : `[${name}] `
  const select = (text: string): string[] => {
    const lines = text.split('\n')
    lines.pop() // the text ends with a newline; a partial last line is not there yet
    return prefix === undefined
      ? lines
      : lines.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length))
  }
  const fetch = async () =>
    select((await ask(client, { op: 'logs', bytes: LOG_BYTES }, options, ctx)).logs ?? '')
  let seen = await fetch()
  if (options.json && !options.follow) ctx.out(`${JSON.stringify({ lines: seen }, null, 2)}\n`)
  else emit(ctx, options, seen)
  if (!options.follow) return
  while (!ctx.signal.aborted) {
    try {
      await sleep(FOLLOW_INTERVAL_MS, undefined, { signal: ctx.signal })
    } catch {
      return // interrupted: following ends normally
    }
    let next: string[]
    try {
      next = await fetch()
    } catch (err) {
      if (ctx.signal.aborted) return
      throw err
    }
    emit(ctx, options, next.slice(overlap(seen, next)))
    seen = next
  }
}

function emit(ctx: CommandContext, options: InitctlOptions, lines: readonly string[]): void {
  for (const line of lines) ctx.out(options.json ? `${JSON.stringify({ line })}\n` : `${line}\n`)
}

/**
 * Both windows are tails of one growing log, so the new one starts inside the old one (or after
 * it): the longest suffix of `before` that is a prefix of `after` is what was already printed.
 */
function overlap(before: readonly string[], after: readonly string[]): number {
  for (let k = Math.min(before.length, after.length); k > 0; k--) {
    let same = true
    for (let i = 0; i < k && same; i++) same = before[before.length - k + i] === after[i]
    if (same) return k
  }
  return 0
}
