import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { makeTempDir, runCli, waitFor } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const bin = new URL('../dist/main.js', import.meta.url).pathname
const temp = makeTempDir('pipeline-cli-')
const env = { ...process.env, XDG_CONFIG_HOME: join(temp.path, 'cfg') }
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')
const tempFiles = (dir: string) => readdirSync(dir).filter((name) => name.endsWith('.tmp'))

interface Listener {
  child: ChildProcess
  stderr: () => string
  /** The listener's first stdout line: the bound address and the key fingerprint. */
  info: { listening: { port?: number }; fingerprint: string }
  exited: Promise<number | null>
}

async function startListener(
  args: string[],
  cwd = temp.path,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<Listener> {
  const child = spawn(process.execPath, [bin, 'listen', ...args], {
    env: { ...env, ...extraEnv },
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk
  })
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  await waitFor(() => stdout.includes('"listening"') || child.exitCode !== null, {
    timeoutMs: 20_000,
    what: 'the listener',
  })
  if (child.exitCode !== null) throw new Error(`listen exited ${child.exitCode}: ${stderr}`)
  const info = JSON.parse(stdout.split('\n')[0]!)
  return { child, stderr: () => stderr, info, exited }
}

afterAll(() => temp.remove())

describe('pipeline (no server needed)', () => {
  it('prints George and Pascal and exits 0', async () => {
    const george = await runCli(bin, ['--george'])
    const pascal = await runCli(bin, ['-p'])
    expect(george.code).toBe(0)
    expect(george.stdout).toContain('George')
    expect(pascal.code).toBe(0)
    expect(pascal.stdout).toContain('Pascal')
    expect((await runCli(bin, ['-g'])).stdout).toBe(george.stdout)
  })

  it('--help lists the commands, the exit codes and what --allow-exec means', async () => {
    const help = await runCli(bin, ['--help'])
    expect(help.code).toBe(0)
    for (const word of [
      'listen',
      'run',
      'send-file',
      'recv-file',
      'send-dir',
      'recv-dir',
      'Exit codes',
      '255',
    ]) {
      expect(help.stdout).toContain(word)
    }
    const listen = await runCli(bin, ['listen', '--help'])
    expect(listen.stdout).toMatch(/--allow-exec[\s\S]*attestation/)
  })

  it('reports a missing address with its flags and config keys (exit 2)', async () => {
    const result = await runCli(bin, ['run', '--dev', '--', 'true'], { env, cwd: temp.path })
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/--addr .*"addr".*--cid .*--port .*"cid".*"port"/)
  })

  it('rejects an unknown flag and a missing explicit config file (exit 2)', async () => {
    expect((await runCli(bin, ['run', '--bogus'], { env })).code).toBe(2)
    const missing = await runCli(bin, ['-c', join(temp.path, 'nope.toml'), 'run', '--dev', '--', 'true'], {
      env,
    })
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('nope.toml')
  })

  it('keygen writes an identity and prints its fingerprint', async () => {
    const path = join(temp.path, 'keys', 'me.pem')
    const made = await runCli(bin, ['keygen', '--identity', path], { env })
    expect(made.code).toBe(0)
    expect(made.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/)
    const again = await runCli(bin, ['fingerprint', '--identity', path], { env })
    expect(again.stdout).toBe(made.stdout)
    expect((await runCli(bin, ['keygen', '--identity', path], { env })).code).toBe(2)
  })
})

describe('the issue’s dev-mode example, verbatim', () => {
  let listener: Listener
  const sock = join(temp.path, 'p.sock')
  const proot = join(temp.path, 'proot')
  beforeAll(async () => {
    mkdirSync(proot)
    listener = await startListener(['--dev', '--addr', `unix://${sock}`, '--allow-exec', '--root', proot])
  })
  afterAll(async () => {
    listener.child.kill('SIGTERM')
    expect(await listener.exited).toBe(0)
  })

  it('run prints hi and exits 3', async () => {
    const result = await runCli(
      bin,
      ['run', '--dev', '--addr', `unix://${sock}`, '--', 'sh', '-c', 'echo hi; exit 3'],
      {
        env,
        cwd: temp.path,
      },
    )
    expect(result.stdout).toBe('hi\n')
    expect(result.code).toBe(3)
    // With no other setup, the listener attests with the dev NSM and the client did not fall back.
    expect(listener.stderr()).toContain('attesting the TLS key with the dev NSM')
    expect(result.stderr).not.toContain('pinned-dev-key')
  })

  it('send-file lands as <root>/big.bin', async () => {
    writeFileSync(join(temp.path, 'big.bin'), randomBytes(3 << 20))
    const result = await runCli(
      bin,
      ['send-file', '--dev', '--addr', `unix://${sock}`, '--localpath', 'big.bin', '--remotepath', 'big.bin'],
      { env, cwd: temp.path },
    )
    expect(result.code).toBe(0)
    expect(sha(join(proot, 'big.bin'))).toBe(sha(join(temp.path, 'big.bin')))
  })

  it('send-file draws a progress bar on a terminal, and none into a pipe', async () => {
    writeFileSync(join(temp.path, 'bar.bin'), randomBytes(8 << 20))
    const args = ['send-file', '--dev', '--addr', `unix://${sock}`, '--localpath', 'bar.bin', '--remotepath']
    // util-linux's script(1) gives the CLI a pseudo-terminal, as a user's shell would.
    const command = [process.execPath, bin, ...args, 'bar-tty.bin'].map((word) => `'${word}'`).join(' ')
    const onTerminal = spawnSync('script', ['-qec', command, '/dev/null'], {
      env,
      cwd: temp.path,
      encoding: 'utf8',
      timeout: 30_000,
    })
    expect(onTerminal.status, onTerminal.stderr).toBe(0)
    expect(onTerminal.stdout).toMatch(/send-file \[\u2588+\] 100% \| 8\.0\/8\.0 MiB/)
    const piped = await runCli(bin, [...args, 'bar-pipe.bin'], { env, cwd: temp.path })
    expect(piped.code).toBe(0)
    expect(piped.stderr).not.toContain('100%')
    expect(sha(join(proot, 'bar-tty.bin'))).toBe(sha(join(temp.path, 'bar.bin')))
  })

  it('run exits 128+N when the command dies by signal N, and 124 on timeout', async () => {
    const killed = await runCli(
      bin,
      ['run', '--dev', '--addr', `unix://${sock}`, '--command', 'kill -KILL $$'],
      { env },
    )
    expect(killed.code).toBe(137)
    const slow = await runCli(
      bin,
      ['run', '--dev', '--addr', `unix://${sock}`, '--timeout', '0.3', '--', 'sleep', '30'],
      {
        env,
      },
    )
    expect(slow.code).toBe(124)
    const missing = await runCli(
      bin,
      ['run', '--dev', '--addr', `unix://${sock}`, '--', 'no-such-command-x'],
      { env },
    )
    expect(missing.code).toBe(127)
  })

  it('forwards stdin with -i and variables with --env, and --no-wait prints the PID', async () => {
    const echoed = await runCli(
      bin,
      [
        'run',
        '--dev',
        '--addr',
        `unix://${sock}`,
        '-i',
        '--env',
        'GREETING=hey',
        '--command',
        'echo $GREETING; cat',
      ],
      { env, input: 'from stdin\n' },
    )
    expect(echoed.stdout).toBe('hey\nfrom stdin\n')
    const detached = await runCli(
      bin,
      ['run', '--dev', '--addr', `unix://${sock}`, '--no-wait', '--', 'sleep', '0.1'],
      {
        env,
      },
    )
    expect(detached.code).toBe(0)
    expect(detached.stdout).toMatch(/^\d+\n$/)
  })

  it('reads cid/port/addr from the TOML config, and the command line wins over it', async () => {
    const dir = join(temp.path, 'cfgcwd')
    mkdirSync(join(dir, '.config'), { recursive: true })
    writeFileSync(join(dir, '.config/pipeline.config.toml'), `addr = "unix://${sock}"\ndev = true\n`)
    const fromFile = await runCli(bin, ['run', '--', 'echo', 'from-file'], { env, cwd: dir })
    expect(fromFile.stdout).toBe('from-file\n')
    writeFileSync(
      join(dir, '.config/pipeline.config.toml'),
      `addr = "unix://${dir}/wrong.sock"\ndev = true\ncid = 5\n`,
    )
    const overridden = await runCli(bin, ['run', '--addr', `unix://${sock}`, '--', 'echo', 'cli'], {
      env,
      cwd: dir,
    })
    expect(overridden.stdout).toBe('cli\n')
    const wrong = await runCli(bin, ['run', '--', 'true'], { env, cwd: dir })
    expect(wrong.code).toBe(255)
  })

  it('refuses a client with another key (exit 255) and a path that escapes (exit 1)', async () => {
    const stranger = join(temp.path, 'stranger.pem')
    await runCli(bin, ['keygen', '--identity', stranger], { env })
    const dev = (await runCli(bin, ['fingerprint', '--dev'], { env })).stdout.trim()
    const refused = await runCli(
      bin,
      ['run', '--addr', `unix://${sock}`, '--identity', stranger, '--server-key', dev, '--', 'true'],
      { env },
    )
    expect(refused.code).toBe(255)
    expect(refused.stderr).toContain('ENCLAVE_PIPELINE_UNAUTHORIZED')
    const escaping = await runCli(
      bin,
      [
        'send-file',
        '--dev',
        '--addr',
        `unix://${sock}`,
        '--localpath',
        join(temp.path, 'big.bin'),
        '--remotepath',
        '../x',
      ],
      { env },
    )
    expect(escaping.code).toBe(1)
    expect(escaping.stderr).toContain('outside the allowed folders')
  })
})

describe('a listener SIGKILLed mid-upload', () => {
  it('leaves a hidden temp file that the next start sweeps once it is stale', async () => {
    const root = join(temp.path, 'killed-root')
    mkdirSync(root)
    const sock = join(temp.path, 'killed-1.sock')
    const first = await startListener(['--dev', '--addr', `unix://${sock}`, '--root', root])
    // Sparse, so the sender is quick to make and the upload is long enough to interrupt.
    const source = join(temp.path, 'sparse-1g.bin')
    writeFileSync(source, '')
    truncateSync(source, 1 << 30)
    const sending = runCli(
      bin,
      ['send-file', '--dev', '--addr', `unix://${sock}`, '--localpath', source, '--remotepath', 'huge.bin'],
      { env, timeoutMs: 60_000 },
    )
    await waitFor(() => tempFiles(root).length > 0, { intervalMs: 5, what: 'the upload temp file' })
    first.child.kill('SIGKILL')
    await first.exited
    expect((await sending).code).not.toBe(0)
    const leftovers = tempFiles(root)
    expect(leftovers).toHaveLength(1)
    const leftover = leftovers[0]!
    expect(leftover).toMatch(/^\.pipeline-[0-9a-f]{16}\.tmp$/)
    expect(tempFiles(root)).toEqual([leftover])
    expect(existsSync(join(root, 'huge.bin'))).toBe(false)

    // Only a stale temp file goes: a fresh one may belong to another server's live upload.
    const fresh = '.pipeline-aaaaaaaaaaaaaaaa.tmp'
    writeFileSync(join(root, fresh), 'live upload')
    const old = new Date(Date.now() - 2 * 3600_000)
    utimesSync(join(root, leftover), old, old)
    const second = await startListener([
      '--dev',
      '--addr',
      `unix://${join(temp.path, 'killed-2.sock')}`,
      '--root',
      root,
    ])
    try {
      expect(tempFiles(root)).toEqual([fresh])
      expect(second.stderr()).toContain('removed stale upload temp files')
    } finally {
      second.child.kill('SIGTERM')
      expect(await second.exited, second.stderr()).toBe(0)
    }
  })
})

describe('Sentient-style --cid/--port in dev mode (vsock as Unix sockets)', () => {
  let listener: Listener
  beforeAll(async () => {
    // CID 16, never 1-3: if dev mode were off this would be a real vsock connection.
    listener = await startListener(['--dev', '--port', '5123', '--allow-exec'], temp.path, {
      ENCLAVE_VSOCK_DEV_CID: '16',
    })
  })
  afterAll(async () => {
    listener.child.kill('SIGTERM')
    await listener.exited
  })

  it('connects with flags, and with cid and port from the config file', async () => {
    const flags = await runCli(
      bin,
      ['run', '--dev', '--cid', '16', '--port', '5123', '--', 'echo', 'vsock'],
      { env },
    )
    expect(flags.stdout).toBe('vsock\n')
    const dir = join(temp.path, 'sentient-cfg')
    mkdirSync(join(dir, '.config'), { recursive: true })
    writeFileSync(join(dir, '.config/pipeline.config.toml'), 'cid = 16\nport = 5123\ndev = true\n')
    const fromFile = await runCli(bin, ['run', '--', 'echo', 'config'], { env, cwd: dir })
    expect(fromFile.stdout).toBe('config\n')
    const onlyCid = await runCli(bin, ['run', '--dev', '--cid', '16', '--', 'true'], { env })
    expect(onlyCid.code).toBe(2)
    expect(onlyCid.stderr).toMatch(/--port .*"port"/)
  })
})

describe('dev-mode attestation', () => {
  let listener: Listener
  const sock = join(temp.path, 'attest.sock')
  beforeAll(async () => {
    // --dev alone: no --attest, the dev NSM attests by default.
    listener = await startListener(['--dev', '--allow-exec', '--addr', `unix://${sock}`])
  })
  afterAll(async () => {
    listener.child.kill('SIGTERM')
    await listener.exited
  })

  it('--dev alone checks a dev-NSM document binding the server key, and says so', async () => {
    expect(listener.stderr()).toContain('attesting the TLS key with the dev NSM')
    const ok = await runCli(
      bin,
      ['run', '--dev', '--log-level', 'info', '--addr', `unix://${sock}`, '--', 'echo', 'attested'],
      { env },
    )
    expect(ok.stdout).toBe('attested\n')
    expect(ok.code).toBe(0)
    expect(ok.stderr).toContain('"trust":"dev-nsm-attestation"')
    expect(ok.stderr).toContain('proves nothing about hardware')
  })

  it('checks expected PCRs against the document: the dev NSM’s zero PCR0 passes, another value fails (255)', async () => {
    const zero = await runCli(
      bin,
      [
        'run',
        '--dev',
        '--expect-pcr',
        `0=${'00'.repeat(48)}`,
        '--addr',
        `unix://${sock}`,
        '--',
        'echo',
        'ok',
      ],
      { env },
    )
    expect(zero.stdout).toBe('ok\n')
    expect(zero.code).toBe(0)
    const wrong = await runCli(
      bin,
      ['run', '--dev', '--expect-pcr', `0=${'ab'.repeat(48)}`, '--addr', `unix://${sock}`, '--', 'true'],
      { env },
    )
    expect(wrong.code).toBe(255)
    expect(wrong.stderr).toContain('ENCLAVE_PIPELINE_ATTESTATION_FAILED')
    expect(wrong.stderr).toContain('pcr-mismatch: PCR0')
    const small = join(temp.path, 'attest-small.bin')
    writeFileSync(small, 'x')
    const transfer = await runCli(
      bin,
      [
        'send-file',
        '--dev',
        '--expect-pcr',
        `0=${'ab'.repeat(48)}`,
        '--addr',
        `unix://${sock}`,
        '--localpath',
        small,
        '--remotepath',
        'never.bin',
      ],
      { env },
    )
    expect(transfer.code).toBe(255)
    expect(transfer.stderr).toContain('pcr-mismatch')
  })

  it('falls back to the pinned dev key only when the dev NSM is unavailable, and logs it', async () => {
    // A file where the dev CA folder should be: the dev NSM cannot start, on either side.
    const broken = join(temp.path, 'cfg-no-nsm')
    mkdirSync(broken)
    writeFileSync(join(broken, 'enclave'), 'not a folder')
    const brokenEnv = { ...env, XDG_CONFIG_HOME: broken }
    const brokenSock = join(temp.path, 'no-nsm.sock')
    const plain = await startListener(
      ['--dev', '--allow-exec', '--addr', `unix://${brokenSock}`],
      temp.path,
      {
        XDG_CONFIG_HOME: broken,
      },
    )
    try {
      expect(plain.stderr()).toContain('dev NSM unavailable: not attesting')
      const fallback = await runCli(
        bin,
        ['run', '--dev', '--addr', `unix://${brokenSock}`, '--', 'echo', 'pinned'],
        {
          env: brokenEnv,
        },
      )
      expect(fallback.stdout).toBe('pinned\n')
      expect(fallback.code).toBe(0)
      expect(fallback.stderr).toContain('"trust":"pinned-dev-key"')
      // Asking for an attestation explicitly never falls back.
      const required = await runCli(
        bin,
        ['run', '--dev', '--attest', '--addr', `unix://${brokenSock}`, '--', 'true'],
        { env: brokenEnv },
      )
      expect(required.code).toBe(255)
      expect(required.stderr).toContain('ENCLAVE_PIPELINE_ATTESTATION_FAILED')
    } finally {
      plain.child.kill('SIGTERM')
      await plain.exited
    }
  })
})

describe('every command over tcp', () => {
  let listener: Listener
  let addr: string
  const root = join(temp.path, 'tcproot')
  beforeAll(async () => {
    mkdirSync(root)
    listener = await startListener(['--dev', '--addr', 'tcp://127.0.0.1:0', '--root', root])
    addr = `tcp://127.0.0.1:${listener.info.listening.port}`
  })
  afterAll(async () => {
    listener.child.kill('SIGINT')
    expect(await listener.exited).toBe(0)
  })

  it('send-file, recv-file, send-dir, recv-dir', async () => {
    const local = join(temp.path, 'tcp.bin')
    writeFileSync(local, randomBytes(1 << 20))
    const common = ['--dev', '--addr', addr]
    expect(
      (
        await runCli(bin, ['send-file', ...common, '--localpath', local, '--remotepath', 'x/tcp.bin'], {
          env,
        })
      ).code,
    ).toBe(0)
    const back = join(temp.path, 'tcp-back.bin')
    expect(
      (await runCli(bin, ['recv-file', ...common, '--localpath', back, '--remotepath', 'x/tcp.bin'], { env }))
        .code,
    ).toBe(0)
    expect(sha(back)).toBe(sha(local))

    const tree = join(temp.path, 'tree')
    mkdirSync(join(tree, 'sub'), { recursive: true })
    writeFileSync(join(tree, 'sub/f'), 'f')
    symlinkSync('sub/f', join(tree, 'ln'))
    expect(
      (await runCli(bin, ['send-dir', ...common, '--localdir', tree, '--remotedir', 'tree'], { env })).code,
    ).toBe(0)
    const treeBack = join(temp.path, 'tree-back')
    expect(
      (await runCli(bin, ['recv-dir', ...common, '--localdir', treeBack, '--remotedir', 'tree'], { env }))
        .code,
    ).toBe(0)
    expect(readFileSync(join(treeBack, 'ln'), 'utf8')).toBe('f')
    // exec is off on this server
    const run = await runCli(bin, ['run', ...common, '--', 'true'], { env })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('--allow-exec')
  })
})

describe('a transfer killed midway', () => {
  let listener: Listener
  const sock = join(temp.path, 'kill.sock')
  const root = join(temp.path, 'killroot')
  beforeAll(async () => {
    mkdirSync(root)
    listener = await startListener(['--dev', '--addr', `unix://${sock}`, '--root', root])
  })
  afterAll(async () => {
    listener.child.kill('SIGTERM')
    await listener.exited
  })

  it('client killed during send-file: no destination, and the server removes its temp file', async () => {
    const local = join(temp.path, 'huge.bin')
    writeFileSync(local, '')
    truncateSync(local, 256 << 20)
    const child = spawn(
      process.execPath,
      [
        bin,
        'send-file',
        '--dev',
        '--addr',
        `unix://${sock}`,
        '--localpath',
        local,
        '--remotepath',
        'huge.bin',
      ],
      { env, stdio: 'ignore' },
    )
    await waitFor(() => tempFiles(root).length > 0, { timeoutMs: 20_000, what: 'the upload to start' })
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    await waitFor(() => tempFiles(root).length === 0, { timeoutMs: 20_000, what: 'the server to clean up' })
    expect(existsSync(join(root, 'huge.bin'))).toBe(false)
  }, 60_000)

  it('Ctrl-C during send-file exits 130 and leaves nothing behind', async () => {
    const local = join(temp.path, 'huge-int.bin')
    writeFileSync(local, '')
    truncateSync(local, 256 << 20)
    const child = spawn(
      process.execPath,
      [
        bin,
        'send-file',
        '--dev',
        '--addr',
        `unix://${sock}`,
        '--localpath',
        local,
        '--remotepath',
        'int.bin',
      ],
      { env, stdio: 'ignore' },
    )
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    await waitFor(() => tempFiles(root).length > 0, { timeoutMs: 20_000, what: 'the upload to start' })
    child.kill('SIGINT')
    expect(await exited).toBe(130)
    await waitFor(() => tempFiles(root).length === 0, { timeoutMs: 20_000, what: 'the server to clean up' })
    expect(existsSync(join(root, 'int.bin'))).toBe(false)
  })

  it('server killed during recv-file: the client fails with 255 and leaves no file', async () => {
    const big = join(root, 'served.bin')
    writeFileSync(big, '')
    truncateSync(big, 256 << 20)
    const downloads = join(temp.path, 'downloads')
    mkdirSync(downloads)
    const result = runCli(
      bin,
      [
        'recv-file',
        '--dev',
        '--addr',
        `unix://${sock}`,
        '--localpath',
        join(downloads, 'served.bin'),
        '--remotepath',
        'served.bin',
      ],
      { env, timeoutMs: 60_000 },
    )
    await waitFor(() => tempFiles(downloads).length > 0, { timeoutMs: 20_000, what: 'the download to start' })
    listener.child.kill('SIGKILL')
    const outcome = await result
    expect(outcome.code, outcome.stderr).toBe(255)
    expect(readdirSync(downloads)).toEqual([])
  }, 60_000)
})
