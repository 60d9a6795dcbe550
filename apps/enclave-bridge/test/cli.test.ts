import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import {
  connectBridge,
  createBridgeLogger,
  createLogDestination,
  dialThroughBridge,
} from '@enclave/bridge-enclave'
import { makeTempDir, runCli, waitFor } from '@enclave/test-helpers'
import { afterEach, describe, expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))

let tmp: ReturnType<typeof makeTempDir> | undefined
const children: ChildProcess[] = []

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL')
  tmp?.remove()
  tmp = undefined
})

function startBridge(args: string[], env: Record<string, string> = {}) {
  tmp = makeTempDir('bridge-cli-')
  const child = spawn(process.execPath, [BIN, '--dev-dir', tmp.path, '--no-monitor', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d
  })
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  return { child, dev: { dir: tmp.path, cid: 16 }, out: () => stdout, err: () => stderr, exited }
}

const settings = (intervalMs: number) => ({
  appName: 'cli-test',
  watchdog: { enclaveId: crypto.randomUUID(), intervalMs },
  logger: { level: 'debug' },
  servers: [],
  clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }],
})

describe('enclave-bridge CLI', () => {
  it('--help documents the env vars and exit codes, and exits 0', async () => {
    const r = await runCli(BIN, ['--help'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/ENCLAVE_BRIDGE_VSOCK_INIT_PORT/)
    expect(r.stdout).toMatch(/ENCLAVE_BRIDGE_FORWARD_ENV/)
    expect(r.stdout).toMatch(/Exit codes:/)
  })

  it('exits 2 on a bad option, naming it', async () => {
    const r = await runCli(BIN, ['--init-port', 'abc'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--init-port must be an integer/)
    const r2 = await runCli(BIN, ['--forward-env', 'A B'], { env: { ENCLAVE_VSOCK_DEV_DIR: '/tmp' } })
    expect(r2.code).toBe(2)
    expect(r2.stderr).toMatch(/env allowlist pattern/)
    // The parent (3) is never an enclave CID to trust.
    const r3 = await runCli(BIN, ['--allow-enclave-cid', '3'], { env: { ENCLAVE_VSOCK_DEV_DIR: '/tmp' } })
    expect(r3.code).toBe(2)
    expect(r3.stderr).toMatch(/--allow-enclave-cid must be an integer from 4/)
  })

  it('a second signal while draining exits 4 at once (connections cut), not 0', async () => {
    const accepted: import('node:net').Socket[] = []
    const upstream = createServer((s) => {
      s.on('error', () => {})
      accepted.push(s)
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    try {
      const b = startBridge(['--drain-timeout', '120000'])
      const hs = await connectBridge({ dev: b.dev })
      const session = await hs.finish(settings(60_000), { watchdog: false })
      // An open client-tunnel connection keeps the drain waiting (up to 120 s).
      const { port } = upstream.address() as { port: number }
      const conn = await dialThroughBridge('127.0.0.1', port, { port: 5002, dev: b.dev })
      conn.on('error', () => {})
      b.child.kill('SIGTERM')
      await waitFor(() => b.err().includes('draining tunnels'), { what: 'the drain to start' })
      expect(b.child.exitCode).toBeNull()
      b.child.kill('SIGTERM')
      const [code] = await b.exited
      expect(code).toBe(4)
      expect(b.err()).toMatch(/second signal: cutting connections/)
      conn.destroy()
      session.close()
    } finally {
      for (const s of accepted) s.destroy()
      await new Promise((r) => upstream.close(r))
    }
  })

  it('serves a handshake, prints enclave logs on stdout, and drains on SIGTERM (exit 0)', async () => {
    const b = startBridge(['--forward-env', 'APP_*'], { APP_MODE: 'test', SECRET: 'x' })
    const hs = await connectBridge({ dev: b.dev })
    expect(hs.env).toEqual({ APP_MODE: 'test' })
    const session = await hs.finish(settings(60_000))
    const dest = createLogDestination({ dev: b.dev })
    createBridgeLogger({ appName: 'cli-test' }, dest).info('from the enclave')
    await waitFor(() => b.out().includes('from the enclave'), {
      what: 'the enclave log on stdout',
      timeoutMs: 15_000,
    })
    expect(JSON.parse(b.out().trim()).app).toBe('cli-test')
    // Diagnostics are pino JSON on stderr, never on stdout.
    expect(b.err()).toMatch(/enclave handshake complete/)
    b.child.kill('SIGTERM')
    const [code] = await b.exited
    expect(code).toBe(0)
    session.close()
    await dest.close({ timeoutMs: 100 })
  })

  it('exits 1 when the watchdog misses, so a supervisor restarts it', async () => {
    const b = startBridge([])
    const hs = await connectBridge({ dev: b.dev })
    await hs.finish(settings(300), { watchdog: false })
    const [code] = await b.exited
    expect(code).toBe(1)
    expect(b.err()).toMatch(/ENCLAVE_BRIDGE_HOST_HEARTBEAT_TIMEOUT/)
  })

  it('with --on-watchdog-failure wait, stays up for the next enclave', async () => {
    const b = startBridge(['--on-watchdog-failure', 'wait'])
    const hs = await connectBridge({ dev: b.dev })
    await hs.finish(settings(300), { watchdog: false })
    await waitFor(() => b.err().includes('waiting for a new handshake'), {
      timeoutMs: 15_000,
      what: 'teardown',
    })
    const hs2 = await connectBridge({ dev: b.dev })
    const s2 = await hs2.finish(settings(60_000))
    expect(b.child.exitCode).toBeNull()
    b.child.kill('SIGINT')
    const [code] = await b.exited
    expect(code).toBe(0)
    s2.close()
  })
})

describe('enclave-bridge CLI environment forwarding', () => {
  it('--forward-all-env forwards everything and warns on stderr', async () => {
    const b = startBridge(['--forward-all-env'], { SOME_SECRET: 's3cret' })
    const hs = await connectBridge({ dev: b.dev })
    expect(hs.env.SOME_SECRET).toBe('s3cret')
    hs.close()
    await waitFor(() => b.err().includes('forwarding the WHOLE host environment'), { what: 'the warning' })
    b.child.kill('SIGTERM')
    const [code] = await b.exited
    expect(code).toBe(0)
  })
})
