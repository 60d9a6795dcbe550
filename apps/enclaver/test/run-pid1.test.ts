import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterAll, afterEach, describe, expect, it } from 'vitest'

const ODYN = fileURLToPath(new URL('../dist/odyn.js', import.meta.url))
const temp = makeTempDir('odyn-pid1-')
chmodSync(temp.path, 0o755)
writeFileSync(join(temp.path, 'enclaver.yaml'), 'version: v1\nname: app\ntarget: t\nsources:\n  app: a\n')
afterAll(() => temp.remove())

const canUnshare = (() => {
  if (process.getuid?.() !== 0) return false
  try {
    execFileSync('unshare', ['-p', '-f', '--mount-proc', 'true'])
    return true
  } catch {
    return false
  }
})()

// Lists zombies in the namespace from inside the app (its /proc is the namespace's).
const LIST_ZOMBIES = `for f in /proc/[0-9]*/stat; do s=$(cat $f 2>/dev/null) || continue; case "$s" in *") Z "*) echo "zombie: $s";; esac; done`

const children = new Set<ChildProcess>()
afterEach(() => {
  // A failed test must not leave a looping app behind: SIGKILL to a namespace's PID 1 ends all of it.
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue
    const pid1 = childOf(child.pid!)
    if (pid1) safeKill(pid1, 'SIGKILL')
    safeKill(child.pid!, 'SIGKILL')
  }
  children.clear()
})

function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {}
}

/** The pid (outside the namespace) of the process whose parent is `parent`: odyn under unshare. */
function childOf(parent: number): number | undefined {
  const found = readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .find((e) => {
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent
      } catch {
        return false
      }
    })
  return found === undefined ? undefined : Number(found)
}

if (!canUnshare && process.env.CI === 'true') {
  describe('odyn as PID 1 (PID namespace via unshare)', () => {
    it('runs in CI', () => {
      throw new Error('CI must run these tests as root with unshare(1) able to make a PID namespace')
    })
  })
}

/** odyn as PID 1 of a fresh PID namespace, as in an enclave (vsock in dev mode: nothing real is touched). */
function odynAsPid1(app: string) {
  const child = spawn(
    'unshare',
    [
      '-p',
      '-f',
      '--mount-proc',
      process.execPath,
      ODYN,
      '--config-dir',
      temp.path,
      '--exit',
      '--',
      'sh',
      '-c',
      app,
    ],
    {
      env: {
        ...process.env,
        ENCLAVE_VSOCK_DEV_DIR: join(temp.path, `v${Math.random()}`.slice(0, 12)),
        ENCLAVE_VSOCK_DEV_CID: '16',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString()
  })
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString()
  })
  return { child, out: () => stdout, err: () => stderr }
}

describe.runIf(canUnshare)('odyn as PID 1 (PID namespace via unshare)', () => {
  it('reaps orphaned grandchildren and reports the app exit code', async () => {
    // Each inner sh orphans a short sleep; the app then polls (≤ 20 s) until every orphan is gone
    // from /proc, which only happens once PID 1 (odyn) has reaped it.
    const { child, out, err } = odynAsPid1(
      [
        `pids=""; for i in 1 2 3 4; do pids="$pids $(sh -c 'sleep 0.2 >/dev/null 2>&1 & echo $!')"; done`,
        'echo "pid=$$ orphans=$pids"',
        'n=0; while [ $n -lt 200 ]; do left=""; for p in $pids; do [ -e /proc/$p ] && left="$left $p"; done',
        '  [ -z "$left" ] && break; n=$((n+1)); sleep 0.1; done',
        '[ -z "$left" ] && echo all-reaped || echo "left:$left"',
        LIST_ZOMBIES,
        'echo listed; exit 6',
      ].join('\n'),
    )
    const [code] = await once(child, 'exit')
    expect(out(), err()).toContain('all-reaped')
    expect(out()).toContain('listed')
    expect(out()).not.toContain('zombie:')
    expect(err()).toContain('"pid":1,')
    expect(code, err()).toBe(6)
  })

  it('SIGTERM to PID 1 reaches the app and odyn exits after it', async () => {
    const { child, out, err } = odynAsPid1(
      `trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done`,
    )
    await waitFor(() => out().includes('ready'), { what: 'ready', timeoutMs: 20_000 })
    // odyn's pid outside the namespace: the child of unshare.
    const odynPid = childOf(child.pid!)
    expect(odynPid).toBeDefined()
    process.kill(Number(odynPid), 'SIGTERM')
    const [code] = await once(child, 'exit')
    expect(out(), err()).toContain('got TERM')
    expect(code).toBe(0)
  })
})
