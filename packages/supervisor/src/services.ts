import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '@enclave/logger'
import type { RestartPolicy, ServiceConfig } from './config.js'
import { ServiceGraphError } from './errors.js'
import type { LogRing } from './log-ring.js'
import { type ManagedProcess, type ProcessExit, type ProcessUser, startProcess } from './process.js'

/** Start order from before/after/requires (a stable topological sort); throws on unknown names or cycles. */
export function serviceOrder(services: readonly ServiceConfig[]): ServiceConfig[] {
  const byName = new Map(services.map((s) => [s.name, s]))
  const deps = new Map<string, Set<string>>(services.map((s) => [s.name, new Set<string>()]))
  for (const s of services) {
    for (const r of s.requires) {
      if (!byName.has(r))
        throw new ServiceGraphError(`service "${s.name}" requires "${r}", which is not defined`)
      deps.get(s.name)!.add(r)
    }
    // after/before name optional neighbours: an unknown one only orders nothing.
    for (const a of s.after) if (byName.has(a)) deps.get(s.name)!.add(a)
    for (const b of s.before) if (byName.has(b)) deps.get(b)!.add(s.name)
  }
  const order: ServiceConfig[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, path: string[]): void => {
    const st = state.get(name)
    if (st === 'done') return
    if (st === 'visiting')
      throw new ServiceGraphError(`service dependencies form a cycle: ${[...path, name].join(' → ')}`)
    state.set(name, 'visiting')
    for (const d of deps.get(name)!) visit(d, [...path, name])
    state.set(name, 'done')
    order.push(byName.get(name)!)
  }
  for (const s of services) visit(s.name, [])
  return order
}

/** Whether a policy restarts after `exit`. */
export function shouldRestart(policy: RestartPolicy, exit: ProcessExit): boolean {
  const success = exit.code === 0
  switch (policy) {
    case 'always':
      return true
    case 'on-failure':
      return !success
    case 'on-success':
      return success
    default:
      return false
  }
}

export type ServiceState = 'stopped' | 'running' | 'waiting' | 'exited'

export interface ServiceStatus {
  readonly name: string
  readonly state: ServiceState
  readonly pid: number | undefined
  readonly restarts: number
  readonly lastExit: ProcessExit | undefined
  readonly restart: RestartPolicy
}

export interface ServiceManager {
  /** Starts the enabled services in dependency order. */
  startAll(): Promise<void>
  /** Stops every service, in reverse order; none restarts afterwards. */
  stopAll(graceMs: number): Promise<void>
  start(name: string): Promise<void>
  stop(name: string, graceMs: number): Promise<void>
  list(): ServiceStatus[]
}

export interface ServiceManagerOptions {
  readonly services: readonly ServiceConfig[]
  readonly env: NodeJS.ProcessEnv
  readonly defaultUser?: ProcessUser
  readonly ring?: LogRing
  readonly ownPids: Set<number>
  /** Shortest delay between restarts, whatever restart_sec says (guards against spinning). @default 100 */
  readonly minRestartMs?: number
}

interface Runtime {
  readonly config: ServiceConfig
  state: ServiceState
  proc: ManagedProcess | undefined
  restarts: number
  lastExit: ProcessExit | undefined
  /** Set by a manual stop or stopAll: the policy no longer applies. */
  held: boolean
  delay: AbortController | undefined
}

export function createServiceManager(options: ServiceManagerOptions, logger: Logger): ServiceManager {
  const log = logger.child({ component: 'services' })
  const ordered = serviceOrder(options.services)
  const runtimes = new Map<string, Runtime>(
    ordered.map((config) => [
      config.name,
      {
        config,
        state: 'stopped',
        proc: undefined,
        restarts: 0,
        lastExit: undefined,
        held: false,
        delay: undefined,
      },
    ]),
  )
  const minRestartMs = options.minRestartMs ?? 100

  const get = (name: string): Runtime => {
    const rt = runtimes.get(name)
    if (!rt) throw new ServiceGraphError(`no service named "${name}"`)
    return rt
  }

  const launch = async (rt: Runtime): Promise<void> => {
    const { config } = rt
    const proc = await startProcess({
      what: `service ${config.name}`,
      command: config.command,
      env: { ...options.env, ...config.environment },
      cwd: config.workingDirectory,
      user: config.user ?? options.defaultUser,
      ring: options.ring,
      prefix: `[${config.name}] `,
      ownPids: options.ownPids,
    })
    rt.proc = proc
    rt.state = 'running'
    log.info({ service: config.name, pid: proc.pid }, 'service started')
    void proc.exited.then((exit) => onExit(rt, proc, exit))
  }

  const onExit = (rt: Runtime, proc: ManagedProcess, exit: ProcessExit): void => {
    if (rt.proc !== proc) return
    rt.lastExit = exit
    rt.state = 'exited'
    log.info({ service: rt.config.name, ...exit }, 'service exited')
    if (rt.held || !shouldRestart(rt.config.restart, exit)) return
    rt.state = 'waiting'
    const delay = new AbortController()
    rt.delay = delay
    const ms = Math.max(minRestartMs, rt.config.restartSec * 1000)
    sleep(ms, undefined, { signal: delay.signal }).then(
      async () => {
        rt.delay = undefined
        if (rt.held) return
        rt.restarts++
        try {
          await launch(rt)
        } catch (err) {
          rt.state = 'exited'
          log.error({ service: rt.config.name, err }, 'service restart failed')
        }
      },
      () => {},
    )
  }

  const stopOne = async (rt: Runtime, graceMs: number): Promise<void> => {
    rt.held = true
    rt.delay?.abort()
    rt.delay = undefined
    if (rt.state === 'waiting') rt.state = 'exited'
    const proc = rt.proc
    if (proc) await proc.stop(graceMs)
    rt.state = 'stopped'
  }

  return {
    async startAll() {
      for (const rt of runtimes.values()) {
        if (!rt.config.enabled) continue
        rt.held = false
        await launch(rt)
      }
    },
    async stopAll(graceMs) {
      for (const rt of [...runtimes.values()].reverse()) await stopOne(rt, graceMs)
    },
    async start(name) {
      const rt = get(name)
      if (rt.state === 'running') return
      rt.held = false
      await launch(rt)
    },
    async stop(name, graceMs) {
      await stopOne(get(name), graceMs)
    },
    list() {
      return [...runtimes.values()].map((rt) => ({
        name: rt.config.name,
        state: rt.state,
        pid: rt.state === 'running' ? rt.proc?.pid : undefined,
        restarts: rt.restarts,
        lastExit: rt.lastExit,
        restart: rt.config.restart,
      }))
    },
  }
}
