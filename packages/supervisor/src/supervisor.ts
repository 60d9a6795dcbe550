import type { Server, Socket } from 'node:net'
import { type Logger, silentLogger } from '@enclave/logger'
import { type DevModeOptions, listen } from '@enclave/vsock-transport'
import { DEFAULT_APP_USER, type OdynConfig } from './config.js'
import { startControlServer } from './control.js'
import { InvalidOptionsError, StartupFailedError, StateError, SupervisorError } from './errors.js'
import { type HeartbeatOptions, sendBootHeartbeat } from './heartbeat.js'
import { createLogRing, type LogRing } from './log-ring.js'
import { type ManagedProcess, type ProcessExit, type ProcessUser, startProcess } from './process.js'
import { createReaper, listProcesses, type Reaper, zombieChildren } from './reaper.js'
import { createServiceManager, type ServiceManager } from './services.js'
import { APP_LOG_PORT, type EnclaveStatus, encodeStatus, STATUS_PORT } from './status.js'

/** What a plug-in service (egress, ingress, KMS proxy, API...) gets at start-up. */
export interface PluginContext {
  /** The parsed enclaver.yaml, as the caller loaded it. */
  readonly manifest: unknown
  readonly logger: Logger
  /** Aborted when the supervisor shuts down. */
  readonly signal: AbortSignal
  /** vsock dev mode in effect (simulator), or false on a real enclave. */
  readonly dev: DevModeOptions | false | undefined
  /** The NSM the caller opened (device, or the simulator's dev NSM), if any. */
  readonly nsm: unknown
}

/** A started plug-in: environment for the app (e.g. http_proxy) and how to stop it. */
export interface PluginHandle {
  readonly env?: Readonly<Record<string, string>>
  stop(): Promise<void>
}

/** The interface the networking and API services implement to run inside odyn, before the app. */
export interface SupervisorPlugin {
  readonly name: string
  start(ctx: PluginContext): Promise<PluginHandle | undefined>
}

export interface SupervisorOptions {
  /** The app: argv after `--`. */
  readonly command: readonly string[]
  /** The parsed enclaver.yaml, handed to plug-ins. */
  readonly manifest?: unknown
  /** odyn.yaml: services, app user, heartbeat. @default no services */
  readonly config?: OdynConfig
  /** The app's user. null keeps odyn's own. @default config.user, else 1000:1000 when odyn is root */
  readonly user?: ProcessUser | null
  /** The app's base environment. @default process.env */
  readonly env?: NodeJS.ProcessEnv
  /** @default vsock://any:17000 */
  readonly statusAddress?: string
  /** @default vsock://any:17001 */
  readonly logAddress?: string
  /** vsock dev mode for the status/log servers and plug-ins (simulator, tests). */
  readonly dev?: DevModeOptions | false
  /** Copy every log line to odyn's stdout too (the console). @default false */
  readonly console?: boolean
  /**
   * Brings up `lo` (an enclave init step): true runs `ip link set lo up`, or pass your own step.
   * Off in dev/simulate. @default false
   */
  readonly loopback?: boolean | (() => Promise<void>)
  /** The Nitro boot heartbeat (only as PID 1 of a custom init). @default false */
  readonly heartbeat?: HeartbeatOptions | false
  readonly plugins?: readonly SupervisorPlugin[]
  /** Grace between SIGTERM and SIGKILL when stopping, ms. @default 10000 */
  readonly graceMs?: number
  /** Reap orphans (PID 1 or child subreaper). @default true */
  readonly reaper?: boolean
  /** @default 1000 */
  readonly reaperIntervalMs?: number
  /** At shutdown, also end every other child still running under this process. @default true when PID 1 */
  readonly killOrphans?: boolean
  readonly nsm?: unknown
  /**
   * A failure found before start (e.g. an invalid manifest): start() brings up the status and log
   * servers and publishes it as fatal{error}, so the host learns why instead of timing out.
   */
  readonly startupError?: Error
  /**
   * The control interface (list/status/start/stop/restart/logs of services), mutually
   * authenticated with `key`. Off unless given. @default address vsock://any:9001
   */
  readonly control?: { readonly address?: string; readonly key: Uint8Array }
}

export type SupervisorState = 'idle' | 'starting' | 'running' | 'finished' | 'closed'

export interface Supervisor {
  /** Start-up: status + log servers, heartbeat, lo, plug-ins, services, then the app. */
  start(): Promise<void>
  readonly state: SupervisorState
  /** The status last published. */
  readonly status: EnclaveStatus
  /** Resolves with the final status (exited, signaled or fatal). */
  readonly finished: Promise<EnclaveStatus>
  /** Forwards a signal to the app's process group. */
  signal(signal: NodeJS.Signals): boolean
  /**
   * Forwards `signal` to the app, waits up to graceMs (then SIGKILL), stops services and
   * plug-ins, ends orphans, publishes the final status and closes the servers.
   */
  shutdown(signal?: NodeJS.Signals): Promise<EnclaveStatus>
  readonly logs: LogRing
  readonly services: ServiceManager
  /** Orphans reaped so far. */
  readonly reaped: number
  /** The app's pid while it runs. */
  readonly appPid: number | undefined
}

const MAX_CHANNEL_CLIENTS = 32

export function createSupervisor(options: SupervisorOptions, deps: { logger?: Logger } = {}): Supervisor {
  if (
    !Array.isArray(options.command) ||
    options.command.length === 0 ||
    !options.command.every((a) => typeof a === 'string')
  ) {
    throw new InvalidOptionsError('command must be a non-empty list of strings (the app after "--")')
  }
  const graceMs = options.graceMs ?? 10_000
  if (!Number.isInteger(graceMs) || graceMs < 0)
    throw new InvalidOptionsError('graceMs must be an integer ≥ 0 (ms)')
  const logger = (deps.logger ?? silentLogger).child({ component: 'odyn' })
  const config: OdynConfig = options.config ?? { heartbeat: true, services: [] }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  const user =
    options.user === null
      ? undefined
      : (options.user ?? config.user ?? (isRoot ? DEFAULT_APP_USER : undefined))
  const ownPids = new Set<number>()
  const logs = createLogRing(options.console ? { onLine: (line) => process.stdout.write(line) } : {})
  const abort = new AbortController()
  let env: NodeJS.ProcessEnv = { ...(options.env ?? process.env) }
  const services = createServiceManager(
    { services: config.services, env, defaultUser: user, ring: logs, ownPids },
    logger,
  )
  let state: SupervisorState = 'idle'
  let status: EnclaveStatus = { status: 'running' }
  let app: ManagedProcess | undefined
  let reaper: Reaper | undefined
  const servers: Server[] = []
  const statusClients = new Set<Socket>()
  const plugins: { name: string; handle: PluginHandle }[] = []
  let resolveFinished!: (s: EnclaveStatus) => void
  const finished = new Promise<EnclaveStatus>((r) => {
    resolveFinished = r
  })
  let teardown: Promise<void> | undefined

  const publish = (next: EnclaveStatus): void => {
    status = next
    const line = encodeStatus(next)
    for (const client of statusClients) client.write(line)
    if (next.status !== 'running') {
      state = state === 'closed' ? 'closed' : 'finished'
      resolveFinished(next)
    }
  }

  const onStatusClient = (socket: Socket): void => {
    statusClients.add(socket)
    socket.on('close', () => statusClients.delete(socket))
    socket.on('error', () => socket.destroy())
    socket.on('data', () => {})
    socket.write(encodeStatus(status))
  }

  /** Stops everything but the status/log servers (the host still reads the final status). */
  const stopChildren = (): Promise<void> => {
    teardown ??= (async () => {
      abort.abort()
      await services.stopAll(graceMs)
      for (const { name, handle } of plugins.reverse()) {
        try {
          await handle.stop()
        } catch (err) {
          logger.warn({ plugin: name, err }, 'plug-in did not stop cleanly')
        }
      }
      if (options.killOrphans ?? process.pid === 1) await endOrphans(ownPids, graceMs)
      reaper?.sweep()
    })()
    return teardown
  }

  const onAppExit = (exit: ProcessExit): void => {
    logger.info({ ...exit }, 'app exited')
    publish(exit.signal ? { status: 'signaled', signal: exit.signal } : { status: 'exited', code: exit.code })
  }

  const fatal = (err: unknown): void => {
    logger.error({ err }, 'fatal start-up error')
    publish({ status: 'fatal', error: (err as Error)?.message ?? String(err) })
    void stopChildren()
  }

  const start = async (): Promise<void> => {
    if (state !== 'idle') throw new StateError(`start() was already called (state: ${state})`)
    state = 'starting'
    // 1. Status and log servers first, so the host can see a failure in any later step.
    try {
      servers.push(
        await listen(
          options.statusAddress ?? `vsock://any:${STATUS_PORT}`,
          { dev: options.dev },
          onStatusClient,
        ),
      )
      servers.push(
        await listen(options.logAddress ?? `vsock://any:${APP_LOG_PORT}`, { dev: options.dev }, (s) =>
          logs.attach(s),
        ),
      )
      // Each reader costs a bounded backlog; bound how many there can be too.
      for (const server of servers) server.maxConnections = MAX_CHANNEL_CLIENTS
    } catch (cause) {
      for (const s of servers) s.close()
      state = 'closed'
      throw new StartupFailedError('status and log servers', { cause })
    }
    if (options.reaper !== false) {
      try {
        reaper = createReaper({ ownPids, intervalMs: options.reaperIntervalMs }, logger)
        reaper.start()
      } catch (err) {
        logger.warn({ err }, 'no reaper: orphaned processes will stay zombies')
      }
    }
    try {
      if (options.startupError) throw options.startupError
      if (options.control) {
        const control = options.control
        servers.push(
          await step('control interface', () =>
            startControlServer(
              { ...control, dev: options.dev, services, logs: () => logs.snapshot(), graceMs },
              logger,
            ),
          ),
        )
      }
      if (options.heartbeat)
        // The supervisor's dev mode applies to the heartbeat too: off Nitro, vsock://3 is the real host.
        await sendBootHeartbeat({
          ...options.heartbeat,
          dev: options.heartbeat.dev ?? options.dev,
          signal: abort.signal,
        })
      const loopback =
        options.loopback === true
          ? () => runToCompletion(['ip', 'link', 'set', 'lo', 'up'], ownPids)
          : options.loopback
      if (loopback) await step('loopback', loopback)
      for (const plugin of options.plugins ?? []) {
        const handle = await step(`plug-in ${plugin.name}`, () =>
          plugin.start({
            manifest: options.manifest,
            logger: logger.child({ plugin: plugin.name }),
            signal: abort.signal,
            dev: options.dev,
            nsm: options.nsm,
          }),
        )
        if (handle) {
          plugins.push({ name: plugin.name, handle })
          if (handle.env) env = Object.assign(env, handle.env)
        }
      }
      await step('services', () => services.startAll())
      app = await startProcess({
        what: 'the app',
        command: options.command,
        env,
        user,
        ring: logs,
        ownPids,
        onExit: onAppExit,
      })
      logger.info({ pid: app.pid, uid: user?.uid }, 'app started')
      state = 'running'
      // Services and leftovers stop once the app is gone; the servers stay for the host.
      void app.exited.then(() => stopChildren())
      void app.exited.then(() => reaper?.sweep())
    } catch (err) {
      fatal(
        err instanceof SupervisorError || options.startupError === err
          ? err
          : new StartupFailedError('start-up', { cause: err }),
      )
    }
  }

  // Members of stopped groups that were re-parented to us die a moment later: reap them before exit.
  const reapLeftovers = async (): Promise<void> => {
    if (!reaper) return
    const deadline = Date.now() + Math.min(graceMs, 2000)
    for (;;) {
      reaper.sweep()
      const left = zombieChildren().filter((pid) => !ownPids.has(pid))
      const running = listProcesses().some(
        (p) => p.ppid === process.pid && p.state !== 'Z' && !ownPids.has(p.pid),
      )
      if ((left.length === 0 && !running) || Date.now() > deadline) return
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  const closeServers = async (): Promise<void> => {
    logs.close()
    for (const client of statusClients) client.end()
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
    for (const client of statusClients) client.destroy()
    reaper?.stop()
    state = 'closed'
  }

  return {
    start,
    get state() {
      return state
    },
    get status() {
      return status
    },
    finished,
    signal(signal) {
      return app && !app.exit ? app.signalGroup(signal) : false
    },
    async shutdown(signal = 'SIGTERM') {
      if (app && !app.exit) await app.stop(graceMs, signal)
      else if (state !== 'finished' && state !== 'closed')
        publish({ status: 'fatal', error: `stopped by ${signal} before the app started` })
      await stopChildren()
      await reapLeftovers()
      await closeServers()
      return finished
    },
    logs,
    services,
    get reaped() {
      return reaper?.reaped ?? 0
    },
    get appPid() {
      return app && !app.exit ? app.pid : undefined
    },
  }
}

/** Runs a helper command as a tracked child (so the reaper leaves it to libuv); non-zero exit throws. */
async function runToCompletion(command: readonly string[], ownPids: Set<number>): Promise<void> {
  const proc = await startProcess({ what: command.join(' '), command, env: process.env, ownPids })
  const exit = await proc.exited
  if (exit.code !== 0)
    throw new Error(`${command.join(' ')} ended with ${exit.signal ?? `exit code ${exit.code}`}`)
}

async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (cause) {
    throw new StartupFailedError(name, { cause })
  }
}

/** SIGTERM, then SIGKILL after graceMs, to every live child of this process that libuv does not own. */
async function endOrphans(ownPids: ReadonlySet<number>, graceMs: number): Promise<void> {
  const orphans = () =>
    listProcesses().filter((p) => p.ppid === process.pid && p.state !== 'Z' && !ownPids.has(p.pid))
  const first = orphans()
  if (first.length === 0) return
  for (const p of first) safeKill(p.pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline && orphans().length > 0) await new Promise((r) => setTimeout(r, 50))
  for (const p of orphans()) safeKill(p.pid, 'SIGKILL')
}

function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {}
}
