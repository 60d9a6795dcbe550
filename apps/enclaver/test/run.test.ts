import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeEif, writeEif } from '@enclave/eif'
import { makeTempDir, runCli, waitFor } from '@enclave/test-helpers'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const ODYN = fileURLToPath(new URL('../dist/odyn.js', import.meta.url))
const FAKE_NITRO = fileURLToPath(new URL('./fixtures/nitro-cli.mjs', import.meta.url))

const temp = makeTempDir('enclaver-run-')
const dir = temp.path
const eif = join(dir, 'app.eif')
const manifest = join(dir, 'enclaver.yaml')
let pcr0 = ''

beforeAll(async () => {
  // The simulated app runs as uid 1000: it must be able to reach the temp dir.
  chmodSync(dir, 0o755)
  await writeEif(eif, {
    kernel: Buffer.from('KERNEL'.repeat(64)),
    cmdline: 'console=ttyS0',
    ramdisks: [Buffer.from('bootstrap'.repeat(32)), Buffer.from('customer'.repeat(32))],
  })
  pcr0 = (await describeEif(eif)).Measurements.PCR0
  writeFileSync(
    manifest,
    'version: v1\nname: app\ntarget: app:latest\nsources:\n  app: app:latest\ndefaults:\n  memory_mb: 512\n',
  )
})
afterAll(() => temp.remove())

// Spawned CLIs (and the odyn each one started) are ended even when a test fails midway.
const spawned: { child: ChildProcess; odynPid: () => number | undefined }[] = []
afterEach(() => {
  for (const { child, odynPid } of spawned.splice(0)) {
    const odyn = odynPid()
    // odyn forwards SIGTERM to the app's process group and exits after it.
    if (odyn) safeKill(odyn, 'SIGTERM')
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
})

function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {}
}

const sim = (app: string[], extra: string[] = [], env?: NodeJS.ProcessEnv) =>
  runCli(
    BIN,
    ['run', '--simulate', '--eif', eif, '--manifest', manifest, '--odyn', ODYN, ...extra, '--', ...app],
    {
      timeoutMs: 30_000,
      env: env ?? process.env,
    },
  )

describe('enclaver run --simulate (odyn as processes, vsock over Unix sockets)', () => {
  it("exits with the app's code and streams its logs to stdout", async () => {
    const r = await sim(['sh', '-c', 'echo "hello from the app uid=$(id -u)"; exit 7'])
    expect(r.code, r.stderr).toBe(7)
    expect(r.stdout).toContain('hello from the app')
    if (process.getuid?.() === 0) expect(r.stdout).toContain('uid=1000')
  })

  it('exits 107 when the app is killed by a signal', async () => {
    const r = await sim(['sh', '-c', 'kill -KILL $$'])
    expect(r.code, r.stderr).toBe(107)
  })

  it('exits 108 when odyn cannot start the app (fatal)', async () => {
    const r = await sim(['/no/such/app'])
    expect(r.code, r.stderr).toBe(108)
    expect(r.stderr).toContain('/no/such/app')
  })

  it("the dev NSM inside odyn reports the EIF's real PCR0 (debug mode shows odyn's console)", async () => {
    const r = await sim(['true'], ['--debug-mode'])
    expect(r.code, r.stderr).toBe(0)
    expect(pcr0).toMatch(/^[0-9a-f]{96}$/)
    expect(r.stderr).toContain(`"PCR0":"${pcr0}"`)
  })

  it('--expect-pcrs refuses a different EIF and accepts the right one', async () => {
    const wrong = await sim(['true'], ['--expect-pcrs', `PCR0=${'ab'.repeat(48)}`])
    expect(wrong.code).not.toBe(0)
    expect(wrong.stderr).toContain('ENCLAVE_SUPERVISOR_PCR_MISMATCH')
    const right = await sim(['true'], ['--expect-pcrs', `PCR0=${pcr0}`])
    expect(right.code, right.stderr).toBe(0)
  })

  it('starts the services of odyn.yaml (next to the manifest) before the app and restarts by policy', async () => {
    const sub = join(dir, 'with-services')
    mkdirSync(sub, { recursive: true })
    chmodSync(sub, 0o755)
    writeFileSync(join(sub, 'enclaver.yaml'), readFileSync(manifest))
    writeFileSync(
      join(sub, 'odyn.yaml'),
      'services:\n  - name: svc\n    command: [sh, -c, "echo svc-ran; exit 1"]\n    restart: on-failure\n    restart_sec: 0.2\n',
    )
    const r = await runCli(
      BIN,
      [
        'run',
        '--simulate',
        '--eif',
        eif,
        '--manifest',
        join(sub, 'enclaver.yaml'),
        '--odyn',
        ODYN,
        '--',
        'sh',
        '-c',
        'sleep 1; echo app-done',
      ],
      { timeoutMs: 30_000 },
    )
    expect(r.code, r.stderr).toBe(0)
    const runs = r.stdout.split('\n').filter((l) => l === '[svc] svc-ran').length
    expect(runs).toBeGreaterThanOrEqual(2)
    expect(r.stdout.indexOf('[svc] svc-ran')).toBeLessThan(r.stdout.indexOf('app-done'))
  })

  it('SIGTERM on the host reaches the app, everything stops, exit 109', async () => {
    const marks = join(dir, 'marks')
    mkdirSync(marks, { mode: 0o777 })
    chmodSync(marks, 0o777)
    const mark = join(marks, 'term')
    const child = spawn(
      process.execPath,
      [
        BIN,
        'run',
        '--simulate',
        '--eif',
        eif,
        '--manifest',
        manifest,
        '--odyn',
        ODYN,
        '--',
        'sh',
        '-c',
        `trap 'echo got > ${mark}; exit 0' TERM; echo ready; while :; do sleep 0.1; done`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stdout = ''
    let stderr = ''
    spawned.push({ child, odynPid: () => Number(/sim-(\d+)/.exec(stderr)?.[1] ?? 0) || undefined })
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    await waitFor(() => stdout.includes('ready'), { what: 'the app to start', timeoutMs: 20_000 })
    const odynPid = Number(/sim-(\d+)/.exec(stderr)?.[1] ?? 0)
    expect(odynPid).toBeGreaterThan(0)
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    expect(code, stderr).toBe(109)
    expect(readFileSync(mark, 'utf8').trim()).toBe('got')
    expect(() => process.kill(odynPid, 0)).toThrow()
  })
})

describe('odyn usage errors', () => {
  it('refuses an invalid ENCLAVE_VSOCK_DEV_CID with exit 2, naming the variable', async () => {
    for (const bad of ['abc', '3', '-1', '1e3']) {
      const r = await runCli(ODYN, ['--config-dir', dir, '--', 'true'], {
        env: { ...process.env, ENCLAVE_VSOCK_DEV_DIR: join(dir, 'vsock-bad'), ENCLAVE_VSOCK_DEV_CID: bad },
        timeoutMs: 30_000,
      })
      expect(r.code, bad).toBe(2)
      expect(r.stderr).toContain('ENCLAVE_VSOCK_DEV_CID')
    }
  })
})

describe('enclaver run on a Nitro host (a fake nitro-cli on PATH)', () => {
  const setup = (mode: string) => {
    const bin = join(dir, `bin-${mode}`)
    mkdirSync(bin, { recursive: true })
    if (!existsSync(join(bin, 'nitro-cli'))) symlinkSync(FAKE_NITRO, join(bin, 'nitro-cli'))
    const config = join(dir, `config-${mode}`)
    mkdirSync(config, { recursive: true })
    writeFileSync(join(config, 'enclaver.yaml'), readFileSync(manifest))
    const vsock = join(dir, `vsock-${mode}`)
    const log = join(dir, `nitro-${mode}.log`)
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      FAKE_NITRO_LOG: log,
      FAKE_NITRO_MODE: mode,
      FAKE_NITRO_ODYN: ODYN,
      FAKE_NITRO_CONFIG: config,
      FAKE_NITRO_APP: JSON.stringify(['sh', '-c', 'echo inside the enclave; exit 5']),
      // Host and "enclave" reach each other over Unix sockets: nothing touches real vsock.
      ENCLAVE_VSOCK_DEV_DIR: vsock,
    }
    const calls = () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as string[])
        : []
    return { env, calls }
  }
  const run = (env: NodeJS.ProcessEnv, extra: string[] = []) =>
    runCli(BIN, ['run', '--eif', eif, '--manifest', manifest, '--enclave-cid', '18', ...extra], {
      env,
      timeoutMs: 30_000,
    })

  it('drives run-enclave / describe-enclaves / terminate-enclave and returns the app code', async () => {
    const { env, calls } = setup('ok')
    const r = await run(env, ['--cpu-count', '2'])
    expect(r.code, r.stderr).toBe(5)
    expect(r.stdout).toContain('inside the enclave')
    const c = calls()
    expect(c[0]).toEqual([
      'run-enclave',
      '--cpu-count',
      '2',
      '--memory',
      '512',
      '--eif-path',
      eif,
      '--enclave-cid',
      '18',
    ])
    expect(c[1]).toEqual(['describe-enclaves'])
    expect(c.at(-1)?.slice(0, 2)).toEqual(['terminate-enclave', '--enclave-id'])
    expect(c.at(-1)?.[2]).toMatch(/^i-0123456789abcdef0-enc/)
  })

  it("reports nitro-cli's failure with its error log path and starts nothing", async () => {
    const { env, calls } = setup('run-fails')
    const r = await run(env)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('ENCLAVE_SUPERVISOR_NITRO_CLI')
    expect(r.stderr).toContain('/var/log/nitro_enclaves/err2026-11-23T12:00:00.000.log')
    expect(calls().map((c) => c[0])).toEqual(['run-enclave'])
  })

  it('refuses (and terminates) an enclave that is not RUNNING after run-enclave', async () => {
    const { env, calls } = setup('not-running')
    const r = await run(env)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('TERMINATING')
    expect(calls().map((c) => c[0])).toEqual(['run-enclave', 'describe-enclaves', 'terminate-enclave'])
  })

  it('fails when terminate-enclave does not say Terminated: true', async () => {
    const { env } = setup('terminate-fails')
    const r = await run(env)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('was not terminated')
  })
})
