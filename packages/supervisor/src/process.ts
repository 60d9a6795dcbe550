import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { SpawnFailedError } from './errors.js'
import type { LogRing } from './log-ring.js'
import { listProcesses } from './reaper.js'

/** How a process ended: its exit code, or the signal that killed it. */
export type ProcessExit =
  | { readonly code: number; readonly signal?: undefined }
  | { readonly code?: undefined; readonly signal: NodeJS.Signals }

export interface ProcessUser {
  readonly uid: number
  readonly gid: number
}

export interface StartProcessOptions {
  readonly what: string
  readonly command: readonly string[]
  readonly env: NodeJS.ProcessEnv
  readonly cwd?: string
  readonly user?: ProcessUser
  /** Output goes into the ring (line by line, with this prefix); without a ring it is inherited. */
  readonly ring?: LogRing
  readonly prefix?: string
  /** Every spawned pid is added here while libuv owns its exit status (see reaper.ts). */
  readonly ownPids: Set<number>
  /** Called once the process has exited and been reaped by libuv. */
  readonly onExit?: (exit: ProcessExit) => void
}

/** A child in its own process group (pgid = pid), so signals reach everything it started. */
export interface ManagedProcess {
  readonly pid: number
  readonly exited: Promise<ProcessExit>
  /** The exit, once it happened. */
  readonly exit: ProcessExit | undefined
  /** Sends `signal` to the whole process group; false if it is gone. */
  signalGroup(signal: NodeJS.Signals): boolean
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves with the leader's exit. */
  stop(graceMs: number, signal?: NodeJS.Signals): Promise<ProcessExit>
}

/** Spawns `command`; rejects with SpawnFailedError when it cannot start (ENOENT, EACCES, EPERM...). */
export async function startProcess(options: StartProcessOptions): Promise<ManagedProcess> {
  const [file, ...args] = options.command
  if (!file) throw new SpawnFailedError(options.what, options.command, { cause: 'empty command' })
  let child: ChildProcess
  try {
    child = spawn(file, args, {
      env: options.env,
      cwd: options.cwd,
      uid: options.user?.uid,
      gid: options.user?.gid,
      detached: true, // setsid(): own session and process group, pgid = pid
      stdio: ['ignore', options.ring ? 'pipe' : 'inherit', options.ring ? 'pipe' : 'inherit'],
    })
  } catch (cause) {
    throw new SpawnFailedError(options.what, options.command, { cause })
  }
  const spawned = once(child, 'spawn').then(
    () => undefined,
    (err: unknown) => err,
  )
  // Register before anything else can run, so the reaper never touches this pid.
  if (child.pid !== undefined) options.ownPids.add(child.pid)
  const failure = await spawned
  if (failure !== undefined || child.pid === undefined) {
    if (child.pid !== undefined) options.ownPids.delete(child.pid)
    throw new SpawnFailedError(options.what, options.command, { cause: failure })
  }
  const pid = child.pid
  if (options.ring) {
    const outSource = options.ring.source(options.prefix)
    const errSource = options.ring.source(options.prefix)
    child.stdout?.on('data', (chunk: Buffer) => outSource.push(chunk))
    child.stdout?.on('end', () => outSource.end())
    child.stderr?.on('data', (chunk: Buffer) => errSource.push(chunk))
    child.stderr?.on('end', () => errSource.end())
  }
  let exit: ProcessExit | undefined
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      options.ownPids.delete(pid)
      exit = signal ? { signal } : { code: code ?? 0 }
      options.onExit?.(exit)
      resolve(exit)
    })
  })
  const signalGroup = (signal: NodeJS.Signals): boolean => {
    try {
      process.kill(-pid, signal)
      return true
    } catch {
      return false
    }
  }
  return {
    pid,
    exited,
    get exit() {
      return exit
    },
    signalGroup,
    async stop(graceMs, signal = 'SIGTERM') {
      if (exit) {
        // The leader is gone; members of its group may remain.
        await stopGroup(pid, graceMs, signal)
        return exit
      }
      signalGroup(signal)
      const timer = sleep(graceMs, 'timeout' as const, { ref: false })
      if ((await Promise.race([exited, timer])) === 'timeout') signalGroup('SIGKILL')
      const result = await exited
      await stopGroup(pid, graceMs, signal)
      return result
    },
  }
}

/** Whether any process is still in process group `pgid`. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

/** Ends what is left of a process group whose leader has exited. */
async function stopGroup(pgid: number, graceMs: number, signal: NodeJS.Signals): Promise<void> {
  if (!groupAlive(pgid)) return
  try {
    process.kill(-pgid, signal)
  } catch {
    return
  }
  const deadline = Date.now() + graceMs
  while (Date.now() < deadline && groupAliveNotZombie(pgid)) await sleep(50)
  if (groupAlive(pgid)) {
    try {
      process.kill(-pgid, 'SIGKILL')
    } catch {}
  }
}

// A group whose members are all zombies still answers kill(-pgid, 0); they only need reaping.
function groupAliveNotZombie(pgid: number): boolean {
  return listProcesses().some((p) => p.pgid === pgid && p.state !== 'Z')
}
