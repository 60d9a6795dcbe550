import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createSupervisor, loadOdynConfig, type Supervisor } from '@enclave/supervisor'
import { runCli, waitFor } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { EXIT } from '../src/exit-codes.js'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const CID = 16
let dir: string
let odyn: Supervisor

// A real odyn in vsock dev mode (Unix sockets under dir), configured through a real odyn.yaml.
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'enclaver-initctl-'))
  writeFileSync(join(dir, 'control.key'), randomBytes(32))
  writeFileSync(join(dir, 'wrong.key'), randomBytes(32))
  writeFileSync(
    join(dir, 'odyn.yaml'),
    `heartbeat: false
control: { port: 9001, key_file: control.key }
services:
  - name: sleeper
    command: [sleep, "60"]
  - name: oneshot
    command: [sh, -c, 'echo "oneshot ran as $$"']
`,
  )
  const config = await loadOdynConfig(dir)
  odyn = createSupervisor({
    command: ['sleep', '60'],
    config,
    user: null,
    dev: { dir, cid: CID },
    reaper: false,
    killOrphans: false,
    graceMs: 2000,
    control: { address: `vsock://any:${config.control!.port}`, key: readFileSync(join(dir, 'control.key')) },
  })
  await odyn.start()
}, 30_000)

afterAll(async () => {
  await odyn?.shutdown('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
}, 30_000)

const initctl = (args: string[], key = 'control.key') =>
  runCli(BIN, ['initctl', '--cid', String(CID), '--dev-dir', dir, '--key-file', join(dir, key), ...args], {
    timeoutMs: 30_000,
  })

const status = async (name: string) => {
  const r = await initctl(['status', name, '--json'])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as { name: string; state: string; pid?: number; restarts: number }
}

describe('enclaver initctl against a running odyn', () => {
  test('list shows both services, as a table and as JSON', async () => {
    const human = await initctl(['list'])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(/^NAME\s+STATE/)
    expect(human.stdout).toMatch(/^sleeper\s+running\s+\d+/m)
    expect(human.stdout).toMatch(/^oneshot\s+/m)

    const json = await initctl(['list', '--json'])
    expect(json.code, json.stderr).toBe(0)
    const { services } = JSON.parse(json.stdout) as { services: { name: string; state: string }[] }
    expect(services.map((s) => s.name).sort()).toEqual(['oneshot', 'sleeper'])
    expect(services.find((s) => s.name === 'sleeper')?.state).toBe('running')
  }, 60_000)

  test('stop, start and restart change the service state', async () => {
    const before = await status('sleeper')
    expect(before.state).toBe('running')

    const stop = await initctl(['stop', 'sleeper'])
    expect(stop.code, stop.stderr).toBe(0)
    expect(stop.stdout).toMatch(/^sleeper: stopped;/)
    expect((await status('sleeper')).state).toBe('stopped')

    const start = await initctl(['start', 'sleeper', '--json'])
    expect(start.code, start.stderr).toBe(0)
    const started = JSON.parse(start.stdout) as { state: string; pid: number }
    expect(started.state).toBe('running')
    expect(started.pid).not.toBe(before.pid)

    const restart = await initctl(['restart', 'sleeper'])
    expect(restart.code, restart.stderr).toBe(0)
    expect(restart.stdout).toMatch(/^sleeper: running \(pid \d+\)/)
    const after = await status('sleeper')
    expect(after.state).toBe('running')
    expect(after.pid).not.toBe(started.pid)
  }, 90_000)

  test("logs prints the service's own output without odyn's prefix", async () => {
    await waitFor(async () => (await status('oneshot')).state === 'exited', {
      timeoutMs: 20_000,
      intervalMs: 500,
    })
    const r = await initctl(['logs', 'oneshot'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^oneshot ran as \d+$/m)
    expect(r.stdout).not.toContain('[oneshot]')

    const json = await initctl(['logs', 'oneshot', '--json'])
    expect(json.code, json.stderr).toBe(0)
    expect((JSON.parse(json.stdout) as { lines: string[] }).lines).toContainEqual(
      expect.stringMatching(/^oneshot ran as \d+$/),
    )
  }, 60_000)

  test('logs --follow prints new lines once each, and ends cleanly on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [BIN, 'initctl', '--cid', String(CID), '--dev-dir', dir, '--key-file', join(dir, 'control.key')].concat(
        ['logs', 'oneshot', '--follow'],
      ),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
    })
    const exited = once(child, 'close')
    try {
      await waitFor(() => /oneshot ran as/.test(out), { timeoutMs: 20_000 })
      const initial = out.split('\n').filter(Boolean).length
      const again = await initctl(['start', 'oneshot'])
      expect(again.code, again.stderr).toBe(0)
      await waitFor(() => out.split('\n').filter(Boolean).length > initial, { timeoutMs: 20_000 })
      const lines = out.split('\n').filter(Boolean)
      expect(new Set(lines).size).toBe(lines.length) // each run has its own pid: no line twice
    } finally {
      child.kill('SIGTERM')
    }
    const [code] = await exited
    expect(code).toBe(0)
  }, 60_000)

  test('an unknown service fails the command (exit 1) and names it', async () => {
    for (const args of [
      ['status', 'nope'],
      ['restart', 'nope'],
      ['logs', 'nope'],
    ]) {
      const r = await initctl(args)
      expect(r.code, r.stderr).toBe(EXIT.failure)
      expect(r.stderr).toContain('no service named \\"nope\\"')
    }
    const json = await initctl(['stop', 'nope', '--json'])
    expect(json.code).toBe(EXIT.failure)
    expect(JSON.parse(json.stdout)).toEqual({ ok: false, error: 'no service named "nope"' })
  }, 90_000)

  test('a wrong key cannot authenticate (exit 8, a clear message) and changes nothing', async () => {
    const r = await initctl(['stop', 'sleeper'], 'wrong.key')
    expect(r.code).toBe(EXIT.control)
    expect(r.stderr).toContain('the supervisor refused us: unauthenticated')
    expect(r.stdout).toBe('')
    expect((await status('sleeper')).state).toBe('running')
  }, 60_000)

  test('a missing key file or an absent supervisor is exit 8 too', async () => {
    const missing = await initctl(['list'], 'no-such.key')
    expect(missing.code).toBe(EXIT.control)
    expect(missing.stderr).toContain('cannot read the control key')

    const elsewhere = await runCli(
      BIN,
      ['initctl', '--cid', '17', '--dev-dir', dir, '--key-file', join(dir, 'control.key'), 'list'],
      { timeoutMs: 30_000 },
    )
    expect(elsewhere.code).toBe(EXIT.control)
    expect(elsewhere.stderr).toContain('cannot connect to the control interface at vsock://17:9001')
  }, 60_000)

  test('usage errors exit 2: no address, both addresses, a reserved CID, a missing name', async () => {
    const key = ['--key-file', join(dir, 'control.key')]
    const cases = [
      ['initctl', ...key, 'list'],
      ['initctl', ...key, '--cid', '16', '--addr', 'vsock://16:9001', 'list'],
      ['initctl', ...key, '--cid', '3', 'list'],
      ['initctl', ...key, '--cid', '16', '--dev-dir', dir, 'status'],
      ['initctl', ...key, '--cid', '16', '--dev-dir', dir, 'frobnicate'],
    ]
    for (const args of cases) {
      const r = await runCli(BIN, args, {
        timeoutMs: 30_000,
        env: { ...process.env, ENCLAVE_VSOCK_DEV_DIR: '' },
      })
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(EXIT.usage)
    }
  }, 90_000)
})
