import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
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
 * Finds a Docker engine for the engine tests, or starts a private one: `dockerd` with no bridge and no
 * iptables, everything under a temporary folder, stopped (SIGTERM) at the end of the run.
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
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM')
      for (let i = 0; i < 200 && !exited; i++) await sleep(100)
      if (!exited) child.kill('SIGKILL')
    }
    const netns = join(execRoot, 'netns', 'default')
    if (existsSync(netns)) {
      try {
        execFileSync('umount', [netns], { stdio: 'ignore' })
      } catch {}
    }
    rmSync(root, { recursive: true, force: true })
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
