import type { ChildProcess } from 'node:child_process'
import diagnosticsChannel from 'node:diagnostics_channel'
import { readdirSync, readFileSync } from 'node:fs'
import type { Logger } from '@enclave/logger'
import { loadReaperAddon, type ReaperAddon } from './native.js'

/**
 * Reaps zombies that are not ours to wait for: orphaned descendants re-parented to this process
 * (it is PID 1, or a child subreaper). It must NOT reap the children Node spawned itself: libuv
 * waits for each of those by pid when SIGCHLD arrives, and a blanket waitpid(-1) would steal their
 * exit status, so 'exit' would never fire (or fire with a wrong code). Node offers no
 * process.on('SIGCHLD') either, so the reaper runs on a timer and after each child 'exit' event:
 *   1. waitid(P_ALL, WNOWAIT) PEEKS at one ended child without reaping it;
 *   2. if that pid is not Node's own child, waitpid(pid) reaps it;
 *   3. if it is one of ours, libuv will reap it, but the peek cannot see past it, so /proc is
 *      scanned for the other zombies whose parent is this process.
 * "Node's own child" is any pid in `ownPids` OR any live ChildProcess created in this process after
 * the reaper was made, seen through the `child_process` diagnostics channel (Node ≥ 16.18): so an
 * in-process plug-in or library that calls spawn/exec/fork itself keeps its 'exit' status.
 * spawnSync reaps its child before returning and needs no tracking.
 */
export interface Reaper {
  /** One pass; returns the pids reaped. Safe to call at any time. */
  sweep(): number[]
  /** Periodic sweeps until stop() (which also ends the tracking of Node-spawned children). */
  start(): void
  stop(): void
  /** Total orphans reaped so far. */
  readonly reaped: number
}

export interface ReaperOptions {
  /** Pids whose exit libuv collects (every child spawned through child_process). */
  readonly ownPids: ReadonlySet<number>
  /** Become a child subreaper when not PID 1. @default true */
  readonly subreaper?: boolean
  /** Sweep period in ms. @default 1000 */
  readonly intervalMs?: number
  /** Injected addon (tests); @default the built native/reaper.c */
  readonly addon?: ReaperAddon
}

const MAX_PER_SWEEP = 4096
const ECHILD = 10

export interface ProcInfo {
  readonly pid: number
  readonly state: string
  readonly ppid: number
  readonly pgid: number
}

/** Every process visible in /proc with its state, parent and process group. */
export function listProcesses(): ProcInfo[] {
  const out: ProcInfo[] = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return out
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const info = procStat(Number(entry))
    if (info) out.push(info)
  }
  return out
}

/** Zombie children of `parent` found in /proc (state Z, ppid = parent). */
export function zombieChildren(parent: number = process.pid): number[] {
  return listProcesses()
    .filter((p) => p.ppid === parent && p.state === 'Z')
    .map((p) => p.pid)
}

/** State letter, parent pid and process group from /proc/<pid>/stat (the name may contain ')' or spaces). */
export function procStat(pid: number): ProcInfo | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return undefined
  }
  const close = text.lastIndexOf(')')
  if (close < 0) return undefined
  const fields = text.slice(close + 2).split(' ')
  const ppid = Number(fields[1])
  const pgid = Number(fields[2])
  if (!fields[0] || !Number.isInteger(ppid) || !Number.isInteger(pgid)) return undefined
  return { pid, state: fields[0], ppid, pgid }
}

/** Live ChildProcess objects created in this process, from the `child_process` diagnostics channel. */
function trackNodeChildren(): { owns(pid: number): boolean; close(): void } {
  const children = new Set<ChildProcess>()
  const channel = diagnosticsChannel.channel('child_process')
  const onChild = (message: unknown): void => {
    const child = (message as { process?: ChildProcess } | null)?.process
    if (!child) return
    children.add(child)
    child.once('exit', () => children.delete(child))
    // A failed spawn (ENOENT...) has no pid and emits no 'exit'.
    child.once('error', () => {
      if (child.pid === undefined) children.delete(child)
    })
  }
  channel.subscribe(onChild)
  return {
    owns(pid) {
      for (const child of children) {
        if (child.pid === pid && child.exitCode === null && child.signalCode === null) return true
      }
      return false
    },
    close() {
      channel.unsubscribe(onChild)
      children.clear()
    },
  }
}

export function createReaper(options: ReaperOptions, logger: Logger): Reaper {
  const addon = options.addon ?? loadReaperAddon()
  const intervalMs = options.intervalMs ?? 1000
  const log = logger.child({ component: 'reaper' })
  if (process.pid !== 1 && options.subreaper !== false) {
    const rc = addon.setChildSubreaper()
    if (rc < 0) log.warn({ errno: -rc }, 'cannot become a child subreaper; orphans will go to PID 1')
  }
  let timer: NodeJS.Timeout | undefined
  let total = 0
  const nodeChildren = trackNodeChildren()
  const isOurs = (pid: number): boolean => options.ownPids.has(pid) || nodeChildren.owns(pid)

  const reapOne = (pid: number, out: number[]): void => {
    const rc = addon.reap(pid)
    if (rc === pid) {
      out.push(pid)
      total++
    }
  }

  const sweep = (): number[] => {
    const out: number[] = []
    for (let i = 0; i < MAX_PER_SWEEP; i++) {
      const pid = addon.peekExited()
      if (pid <= 0) {
        if (pid < 0 && pid !== -ECHILD) log.warn({ errno: -pid }, 'waitid failed')
        break
      }
      if (!isOurs(pid)) {
        reapOne(pid, out)
        continue
      }
      for (const zombie of zombieChildren()) {
        if (!isOurs(zombie)) reapOne(zombie, out)
      }
      break
    }
    if (out.length > 0) log.debug({ pids: out }, 'reaped orphans')
    return out
  }

  return {
    sweep,
    start() {
      if (timer) return
      timer = setInterval(sweep, intervalMs)
      timer.unref()
    },
    stop() {
      if (timer) clearInterval(timer)
      timer = undefined
      nodeChildren.close()
    },
    get reaped() {
      return total
    },
  }
}
