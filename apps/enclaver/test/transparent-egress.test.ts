import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeEif } from '@enclave/eif'
import { makeTempDir, runCli, waitFor } from '@enclave/test-helpers'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  installTransparentRedirect,
  ownsNetwork,
  redirectRule,
  TransparentEgressSetupError,
} from '../src/transparent-egress.js'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const ODYN = fileURLToPath(new URL('../dist/odyn.js', import.meta.url))
const HOST_HALF = fileURLToPath(new URL('./fixtures/egress-host.mjs', import.meta.url))
const APP = fileURLToPath(new URL('./fixtures/transparent-app.mjs', import.meta.url))

const temp = makeTempDir('enclaver-transparent-')
afterAll(() => temp.remove())

const spawned: ChildProcess[] = []
afterEach(async () => {
  for (const child of spawned.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue
    child.kill('SIGTERM')
    await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 15_000))])
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
})

/** Spawns and tracks a child; collects its output. */
function start(file: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  spawned.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString()
  })
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString()
  })
  return { child, out: () => stdout, err: () => stderr, exited: once(child, 'exit') }
}

/** JSON lines of `text` that parse (odyn's console mixes in other lines). */
function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  for (const line of text.split('\n')) {
    try {
      const value = JSON.parse(line) as unknown
      if (value && typeof value === 'object') out.push(value as Record<string, unknown>)
    } catch {}
  }
  return out
}

function writeConfig(dir: string, egress: string[]): string {
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    join(dir, 'enclaver.yaml'),
    [
      'version: v1',
      'name: tp',
      'target: tp:latest',
      'sources:',
      '  app: tp:latest',
      'egress:',
      ...egress,
      '',
    ].join('\n'),
  )
  return dir
}

describe('the redirect rule and where it may be installed', () => {
  it('is the documented REDIRECT of non-loopback TCP to the listener port', () => {
    expect(redirectRule(10001).join(' ')).toBe('-p tcp ! -d 127.0.0.0/8 -j REDIRECT --to-ports 10001')
  })

  it('is installed only when odyn owns the network: a real enclave, or --private-network', () => {
    expect(ownsNetwork(false)).toBe(true) // a real enclave: no vsock dev mode
    expect(ownsNetwork({ dir: '/tmp/v', cid: 16 })).toBe(false) // enclaver run --simulate
    expect(ownsNetwork({ dir: '/tmp/v', cid: 16 }, true)).toBe(true) // a namespace standing in for one
  })

  it('fails with the fix when iptables is missing: which package, --iptables, or turn it off', async () => {
    const err = await installTransparentRedirect({
      port: 10001,
      iptables: join(temp.path, 'no-iptables'),
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TransparentEgressSetupError)
    expect((err as TransparentEgressSetupError).code).toBe('ENCLAVER_TRANSPARENT_EGRESS_SETUP')
    expect((err as Error).message).toMatch(/needs iptables.*could not be run/)
    expect((err as Error).message).toContain('"iptables" package')
    expect((err as Error).message).toContain('iptables-nft')
    expect((err as Error).message).toContain('--iptables <path>')
    expect((err as Error).message).toContain('egress.transparent: false')
  })

  it('fails with iptables own words when the rule is refused, and touches nothing else', async () => {
    // An iptables that refuses like one in a kernel without the nat table; it records its calls.
    const calls = join(temp.path, 'refusing-calls')
    const refusing = join(temp.path, 'refusing-iptables')
    writeFileSync(
      refusing,
      `#!/bin/sh\necho "$@" >> ${calls}\necho "iptables v1.8.9: can't initialize iptables table \\\`nat': Table does not exist" >&2\nexit 3\n`,
    )
    chmodSync(refusing, 0o755)
    const ipCalls = join(temp.path, 'ip-calls')
    const ip = join(temp.path, 'recording-ip')
    writeFileSync(ip, `#!/bin/sh\necho "$@" >> ${ipCalls}\n`)
    chmodSync(ip, 0o755)
    const err = await installTransparentRedirect({ port: 10001, iptables: refusing, ip }).catch(
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(TransparentEgressSetupError)
    expect((err as Error).message).toMatch(
      /failed \(exit 3\): iptables v1\.8\.9: can't initialize iptables table/,
    )
    expect((err as Error).message).toContain('netfilter NAT')
    expect(existsSync(ipCalls)).toBe(false)
    await expect(installTransparentRedirect({ port: 0, iptables: refusing })).rejects.toThrow(
      /1-65535, got 0/,
    )
  })
})

describe('odyn under the simulator (vsock dev mode)', () => {
  it('does not touch the firewall: it logs that transparent egress needs a real enclave and starts the app', async () => {
    const dir = join(temp.path, 'sim')
    const config = writeConfig(join(dir, 'config'), [
      '  proxy_port: 0',
      '  allow: [198.51.100.7]',
      '  transparent: true',
    ])
    mkdirSync(join(dir, 'vsock'))
    const calls = join(dir, 'iptables-calls')
    const recorder = join(dir, 'iptables')
    writeFileSync(recorder, `#!/bin/sh\necho "$@" >> ${calls}\n`)
    chmodSync(recorder, 0o755)
    // The way enclaver run --simulate starts odyn (SimulatorLauncher): dev vsock in a folder.
    const odyn = start(
      process.execPath,
      [
        ODYN,
        '--config-dir',
        config,
        '--iptables',
        recorder,
        '--exit',
        '--',
        process.execPath,
        '-e',
        'console.log("proxy=" + process.env.http_proxy)',
      ],
      { ENCLAVE_VSOCK_DEV_DIR: join(dir, 'vsock'), ENCLAVE_VSOCK_DEV_CID: '16' },
    )
    const [code] = await odyn.exited
    expect(code, odyn.err()).toBe(0)
    expect(odyn.err()).toContain('transparent egress needs a real enclave')
    expect(odyn.err()).toContain(
      "direct TCP connections are NOT intercepted (the host's firewall is left alone)",
    )
    expect(odyn.err()).not.toContain('transparent egress listening')
    expect(odyn.out()).toMatch(/proxy=http:\/\/127\.0\.0\.1:\d+/)
    expect(existsSync(calls)).toBe(false)
  })
})

describe('enclaver run --simulate', () => {
  it('warns on its own stderr that the app is not intercepted, and runs the app with the proxy only', async () => {
    const dir = join(temp.path, 'run-sim')
    const config = writeConfig(dir, ['  proxy_port: 0', '  allow: [198.51.100.7]', '  transparent: true'])
    const eif = join(dir, 'app.eif')
    await writeEif(eif, {
      kernel: Buffer.from('KERNEL'),
      cmdline: 'console=ttyS0',
      ramdisks: [Buffer.from('r')],
    })
    const result = await runCli(
      BIN,
      [
        'run',
        '--simulate',
        '--eif',
        eif,
        '--manifest',
        join(config, 'enclaver.yaml'),
        '--odyn',
        ODYN,
        '--',
        process.execPath,
        '-e',
        'console.log("proxy=" + process.env.http_proxy)',
      ],
      { timeoutMs: 60_000 },
    )
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain(
      "transparent egress needs a real enclave: under --simulate the app's direct TCP connections are NOT intercepted",
    )
    expect(result.stdout).toMatch(/proxy=http:\/\/127\.0\.0\.1:\d+/)
  })
})

// A private network namespace per side, as on Nitro: the "enclave" has only lo; the "host" has the
// destination addresses on its lo and runs the egress host half. They meet over dev-mode vsock
// (Unix sockets in a shared folder), as odyn and enclaver-run do under the simulator.
const IPTABLES = ['/usr/sbin/iptables', '/sbin/iptables', '/usr/bin/iptables'].find((p) => existsSync(p))
const RUN_ID = `${process.pid}-${Date.now() % 100_000}`
const ENCLAVE_NS = `enclaver-tp-enc-${RUN_ID}`
const HOST_NS = `enclaver-tp-host-${RUN_ID}`

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] })
}

function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root'
  if (!IPTABLES) return 'no iptables in /usr/sbin, /sbin or /usr/bin'
  if (!existsSync(ODYN)) return 'odyn is not built (pnpm build)'
  const probe = `enclaver-tp-probe-${RUN_ID}`
  try {
    ip(['netns', 'add', probe])
    execFileSync('ip', ['netns', 'exec', probe, IPTABLES, '-t', 'nat', '-S', 'OUTPUT'], {
      stdio: 'ignore',
      timeout: 10_000,
    })
    return undefined
  } catch (err) {
    return `cannot use a network namespace with iptables: ${(err as Error).message.split('\n')[0]}`
  } finally {
    try {
      ip(['netns', 'del', probe])
    } catch {}
  }
}
const unavailable = netnsUnavailable()
if (unavailable) console.warn(`transparent egress namespace test skipped: ${unavailable}`)

// CI runs as root with iptables: there a missing prerequisite is a failure, not a skip.
it.runIf(process.env.CI === 'true')('CI can run the transparent-egress namespace test', () => {
  expect(unavailable ?? 'available').toBe('available')
})

describe.skipIf(unavailable !== undefined)('odyn transparent egress in a network namespace', () => {
  const ALLOWED = '198.51.100.7:443'
  const DENIED = '198.51.100.8:443'
  const dir = join(temp.path, 'netns')
  const vsock = join(dir, 'vsock')

  beforeAll(() => {
    mkdirSync(vsock, { recursive: true })
    chmodSync(temp.path, 0o755) // the app runs as uid 1000 (odyn as root)
    chmodSync(dir, 0o755)
    copyFileSync(APP, join(dir, 'transparent-app.mjs'))
    for (const ns of [ENCLAVE_NS, HOST_NS]) {
      ip(['netns', 'add', ns])
      ip(['-n', ns, 'link', 'set', 'lo', 'up'])
    }
    for (const target of [ALLOWED, DENIED])
      ip(['-n', HOST_NS, 'addr', 'add', `${target.split(':')[0]}/32`, 'dev', 'lo'])
  })
  afterAll(() => {
    for (const ns of [ENCLAVE_NS, HOST_NS]) {
      try {
        ip(['netns', 'del', ns])
      } catch {}
    }
  })

  const natOutput = () =>
    execFileSync('ip', ['netns', 'exec', ENCLAVE_NS, IPTABLES!, '-t', 'nat', '-S', 'OUTPUT'], {
      encoding: 'utf8',
      timeout: 10_000,
    })

  it('installs the REDIRECT rule, carries an allowed destination to the host, resets a denied one, removes the rule', async () => {
    const policy = ['198.51.100.7']
    const host = start('ip', [
      'netns',
      'exec',
      HOST_NS,
      process.execPath,
      HOST_HALF,
      vsock,
      JSON.stringify({ allow: policy }),
      ALLOWED,
      DENIED,
    ])
    await waitFor(() => host.out().includes('"ready":true'), {
      what: `the host half to listen (stderr: ${host.err()})`,
      timeoutMs: 30_000,
    })

    const config = writeConfig(join(dir, 'config'), [
      `  allow: [${policy.join(', ')}]`,
      '  transparent: true',
    ])
    const hold = join(dir, 'hold')
    const enclave = start(
      'ip',
      [
        'netns',
        'exec',
        ENCLAVE_NS,
        process.execPath,
        ODYN,
        '--config-dir',
        config,
        '--private-network',
        '--iptables',
        IPTABLES!,
        '--exit',
        '--',
        process.execPath,
        join(dir, 'transparent-app.mjs'),
        ALLOWED,
        DENIED,
      ],
      { ENCLAVE_VSOCK_DEV_DIR: vsock, ENCLAVE_VSOCK_DEV_CID: '16', HOLD_FILE: hold },
    )
    await waitFor(() => enclave.out().includes('"done":true'), {
      what: `the app's connections (stdout: ${enclave.out()} stderr: ${enclave.err()})`,
      timeoutMs: 60_000,
    })

    // While odyn runs: the rule, and the default route through lo the app's connect() needs.
    expect(natOutput()).toContain('-A OUTPUT ! -d 127.0.0.0/8 -p tcp -j REDIRECT --to-ports 10001')
    expect(ip(['-n', ENCLAVE_NS, '-4', 'route', 'show', 'default'])).toContain('default dev lo')
    const results = jsonLines(enclave.out()).filter((line) => 'target' in line)
    expect(results, enclave.err()).toEqual([
      { target: ALLOWED, data: 'echo:ping' },
      { target: DENIED, error: 'ECONNRESET' },
    ])
    // The denied destination was refused inside the enclave: the host never dialled it.
    expect(jsonLines(host.out()).filter((line) => 'hit' in line)).toEqual([{ hit: ALLOWED }])
    expect(enclave.err()).toContain('egress to 198.51.100.8 refused by default deny')

    writeFileSync(hold, '')
    const [code] = await enclave.exited
    expect(code, enclave.err()).toBe(0)
    expect(natOutput()).not.toContain('REDIRECT')
    expect(ip(['-n', ENCLAVE_NS, '-4', 'route', 'show', 'default']).trim()).toBe('')
  })

  it('fails start-up with a clear error when the rule cannot be installed, and the app never runs', async () => {
    const config = writeConfig(join(dir, 'config-broken'), ['  allow: [198.51.100.7]', '  transparent: true'])
    const missing = join(dir, 'no-such-iptables')
    const enclave = start(
      'ip',
      [
        'netns',
        'exec',
        ENCLAVE_NS,
        process.execPath,
        ODYN,
        '--config-dir',
        config,
        '--private-network',
        '--iptables',
        missing,
        '--exit',
        '--',
        process.execPath,
        '-e',
        'console.log("the app ran")',
      ],
      { ENCLAVE_VSOCK_DEV_DIR: vsock, ENCLAVE_VSOCK_DEV_CID: '17' },
    )
    const [code] = await enclave.exited
    expect(code).toBe(108) // fatal, as enclaver-run reports it
    // pino escapes the quotes around the path.
    expect(enclave.err()).toContain('egress.transparent needs iptables, and \\"')
    expect(enclave.err()).toContain('could not be run: add iptables to the app image')
    expect(enclave.err()).toContain(missing)
    expect(enclave.out()).not.toContain('the app ran')
    expect(natOutput()).not.toContain('REDIRECT')
  })
})
