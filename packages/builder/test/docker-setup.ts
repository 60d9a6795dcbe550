import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Docker from 'dockerode'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    /** DOCKER_HOST of an engine that answered, or '' when none could be found or started. */
    dockerHost: string
    /** Why there is no engine (for the loud skip / the CI failure). */
    dockerUnavailable: string
  }
}

async function answers(host: string): Promise<boolean> {
  const socketPath = host.replace(/^unix:\/\//, '')
  try {
    await new Docker({ socketPath }).ping()
    return true
  } catch {
    return false
  }
}

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * One record per run that started a private dockerd, so a later run can clean up after a run that was
 * SIGKILLed before its teardown (which leaves dockerd, its containerd and a netns mount behind).
 */
const RUNS_DIR = join(tmpdir(), 'enclave-builder-test-dockerd')

interface RunRecord {
  /** The vitest process that started dockerd, and its start time (guards against pid reuse). */
  owner: number
  ownerStart: string
  dockerd: number
  root: string
}

/** Field 22 of /proc/PID/stat (start time in clock ticks), or '' when the process is gone. */
function startTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? ''
  } catch {
    return ''
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

/** Processes (dockerd, its containerd) whose command line names this run's private folder. */
function processesUnder(root: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => pid !== process.pid && cmdline(pid).includes(root))
}

function unmountNetns(execRoot: string): void {
  const netns = join(execRoot, 'netns', 'default')
  if (existsSync(netns)) {
    try {
      execFileSync('umount', [netns], { stdio: 'ignore' })
    } catch {}
  }
}

/** Kills what runs whose vitest process is gone left behind; live runs (other engineers') are kept. */
async function reapStaleRuns(): Promise<void> {
  let names: string[]
  try {
    names = readdirSync(RUNS_DIR).filter((n) => n.endsWith('.json'))
  } catch {
    return
  }
  for (const name of names) {
    const file = join(RUNS_DIR, name)
    let run: RunRecord
    try {
      run = JSON.parse(readFileSync(file, 'utf8')) as RunRecord
    } catch {
      rmSync(file, { force: true })
      continue
    }
    if (startTime(run.owner) === run.ownerStart) continue
    if (!run.root.startsWith('/tmp/dkr-')) {
      rmSync(file, { force: true })
      continue
    }
    const pids = processesUnder(run.root)
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM')
      } catch {}
    }
    for (let i = 0; i < 100 && pids.some((pid) => startTime(pid) !== ''); i++) await sleep(100)
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
    unmountNetns(join(run.root, 'exec'))
    rmSync(run.root, { recursive: true, force: true })
    rmSync(file, { force: true })
  }
}

/**
 * Finds a Docker engine for the engine tests, or starts a private one: `dockerd` with no bridge and no
 * iptables, everything under a temporary folder, stopped (SIGTERM) at the end of the run. A private
 * dockerd left by an earlier run that was killed (its vitest process is gone) is stopped first.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const candidates = [process.env.DOCKER_HOST, 'unix:///var/run/docker.sock'].filter(
    (h): h is string => !!h && h.startsWith('unix://'),
  )
  for (const host of candidates) {
    if (await answers(host)) {
      project.provide('dockerHost', host)
      project.provide('dockerUnavailable', '')
      return async () => {}
    }
  }
  if (!onPath('dockerd')) {
    project.provide('dockerHost', '')
    project.provide(
      'dockerUnavailable',
      'dockerd is not installed (apt-get install docker.io) and no engine answers',
    )
    return async () => {}
  }
  await reapStaleRuns()
  const root = mkdtempSync('/tmp/dkr-')
  const host = `unix://${join(root, 'docker.sock')}`
  const execRoot = join(root, 'exec')
  const log = openSync(join(root, 'dockerd.log'), 'a')
  const child: ChildProcess = spawn(
    'dockerd',
    [
      '-H',
      host,
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--data-root',
      join(root, 'data'),
      '--exec-root',
      execRoot,
      '--pidfile',
      join(root, 'docker.pid'),
    ],
    { stdio: ['ignore', log, log] },
  )
  let exited = false
  child.on('exit', () => {
    exited = true
  })
  mkdirSync(RUNS_DIR, { recursive: true })
  const record = join(RUNS_DIR, `${process.pid}.json`)
  const run: RunRecord = {
    owner: process.pid,
    ownerStart: startTime(process.pid),
    dockerd: child.pid ?? 0,
    root,
  }
  writeFileSync(record, JSON.stringify(run))
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM')
      for (let i = 0; i < 200 && !exited; i++) await sleep(100)
      if (!exited) child.kill('SIGKILL')
    }
    unmountNetns(execRoot)
    rmSync(root, { recursive: true, force: true })
    rmSync(record, { force: true })
  }
  const deadline = Date.now() + 45_000
  while (Date.now() < deadline && !exited) {
    if (await answers(host)) {
      project.provide('dockerHost', host)
      project.provide('dockerUnavailable', '')
      return stop
    }
    await sleep(200)
  }
  const tail = readFileSync(join(root, 'dockerd.log'), 'utf8').split('\n').slice(-15).join('\n')
  await stop()
  project.provide('dockerHost', '')
  project.provide('dockerUnavailable', `dockerd did not come up within 45 s; its log ends with:\n${tail}`)
  return async () => {}
}
