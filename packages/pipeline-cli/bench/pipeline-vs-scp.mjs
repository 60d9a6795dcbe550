#!/usr/bin/env node
// Side-by-side on loopback: pipeline send-file / recv-file against scp (Debian openssh-server)
// and raw socat (the unencrypted limit), and `pipeline run -- true` against `ssh 127.0.0.1 true`.
// Needs: the built `pipeline` app, socat, ssh/scp, /usr/sbin/sshd (apt-get install openssh-server).
// Usage: node bench/pipeline-vs-scp.mjs   (BENCH_MIB=1024 file size, BENCH_RUNS=2 transfer runs,
// BENCH_LATENCY_RUNS=5, BENCH_ONLY=<regexp> of contender names). Everything lives in a temp folder and is removed at the end.
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import net from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const MIB = Number(process.env.BENCH_MIB ?? 1024)
const RUNS = Number(process.env.BENCH_RUNS ?? 2)
const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 5)
const STEP_TIMEOUT_MS = 300_000
const bin = new URL('../../../apps/pipeline/dist/main.js', import.meta.url).pathname

// Say exactly what is missing before starting anything.
function which(name) {
  for (const folder of (process.env.PATH ?? '').split(':')) {
    try {
      if (statSync(join(folder, name)).isFile()) return true
    } catch {}
  }
  return false
}
const missing = []
if (!existsSync(bin))
  missing.push(
    `the built pipeline app (${bin}): run \`pnpm --filter @enclave/pipeline-cli --filter @enclave/pipeline build\``,
  )
for (const tool of ['socat', 'ssh', 'scp', 'ssh-keygen', 'ss']) {
  if (!which(tool)) missing.push(`\`${tool}\` on PATH`)
}
if (!existsSync('/usr/sbin/sshd')) {
  missing.push(
    '/usr/sbin/sshd (Debian: `apt-get install -y openssh-server`; the bench starts its own throwaway sshd on a high loopback port)',
  )
}
if (!existsSync('/usr/bin/time')) missing.push('/usr/bin/time (Debian: `apt-get install -y time`)')
if (missing.length > 0) {
  console.error(`pipeline-vs-scp bench cannot run; it needs:\n  - ${missing.join('\n  - ')}`)
  process.exit(2)
}
const dir = join(tmpdir(), `pipeline-bench-${process.pid}`)
mkdirSync(dir, { recursive: true })
const env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'cfg') }
const children = []

function run(file, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], env, ...options })
    let stderr = ''
    child.stderr?.on('data', (chunk) => {
      stderr += chunk
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), STEP_TIMEOUT_MS)
    child.on('close', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve()
      else reject(new Error(`${file} ${args.join(' ')} exited ${code}: ${stderr.slice(-500)}`))
    })
  })
}

async function timed(fn) {
  const start = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - start) / 1e9
}

function background(file, args, options = {}) {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env, ...options })
  children.push(child)
  return child
}

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function waitForPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })
    if (ok) return
    await sleep(50)
  }
  throw new Error(`port ${port} never opened`)
}

async function sha256(path) {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk)
  return hash.digest('hex')
}

const stats = (samples) => {
  const sorted = [...samples].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  return { median, min: sorted[0], max: sorted.at(-1) }
}

async function main() {
  console.error(`bench folder ${dir}; file ${MIB} MiB; ${RUNS} transfer runs; ${LATENCY_RUNS} latency runs`)
  const loadAtStart = loadavg()[0]
  const source = join(dir, 'source.bin')
  {
    const out = createWriteStream(source)
    for (let i = 0; i < MIB; i++) {
      if (!out.write(randomBytes(1 << 20))) await new Promise((resolve) => out.once('drain', resolve))
    }
    await new Promise((resolve) => out.end(resolve))
  }
  const expected = await sha256(source)
  const remote = join(dir, 'remote')
  mkdirSync(remote)

  // pipeline server on TCP loopback, like sshd.
  const pipelinePort = await freePort()
  const listener = background(process.execPath, [
    bin,
    'listen',
    '--dev',
    '--allow-exec',
    '--addr',
    `tcp://127.0.0.1:${pipelinePort}`,
    '--root',
    remote,
    '--log-level',
    'warn',
  ])
  listener.stderr.pipe(process.stderr)
  // Waits for its "listening" line: a probe connection would only log a failed handshake.
  await new Promise((resolve, reject) => {
    let out = ''
    listener.stdout.on('data', (chunk) => {
      out += chunk
      if (out.includes('"listening"')) resolve()
    })
    listener.once('exit', (code) => reject(new Error(`pipeline listen exited ${code}`)))
  })
  const paddr = `tcp://127.0.0.1:${pipelinePort}`

  // sshd on a high port with a throwaway config, host key and client key.
  const sshPort = await freePort()
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')])
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')])
  execFileSync('cp', [join(dir, 'client_key.pub'), join(dir, 'authorized_keys')])
  mkdirSync('/run/sshd', { recursive: true })
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${sshPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin yes',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  )
  background('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')])
  await waitForPort(sshPort)
  const sshArgs = [
    '-i',
    join(dir, 'client_key'),
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'LogLevel=ERROR',
  ]

  const rows = []
  // Contenders run in rounds (pipeline, scp, socat, then again), not all runs of one then the
  // next, so a change in the machine's load hits every contender alike.
  const contenders = []
  // BENCH_ONLY=<regexp> keeps the contenders whose name matches (e.g. "recv" or "pipeline").
  const only = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined
  const bench = (name, fn, check) => {
    if (!only || only.test(name)) contenders.push({ name, fn, check, samples: [] })
  }
  const runRounds = async () => {
    for (let i = 0; i < RUNS; i++) {
      for (const contender of contenders) {
        const seconds = await timed(contender.fn)
        if (contender.check) {
          const got = await sha256(contender.check)
          if (got !== expected) throw new Error(`${contender.name}: checksum mismatch`)
          rmSync(contender.check)
        }
        contender.samples.push(MIB / seconds)
        console.error(`round ${i + 1}: ${contender.name} ${(MIB / seconds).toFixed(0)} MiB/s`)
      }
    }
    for (const { name, samples } of contenders) rows.push({ name, unit: 'MiB/s', ...stats(samples) })
  }

  // Peak RSS of each pipeline client (GNU time) and of the server (VmHWM): memory must stay flat.
  const rssFile = join(dir, 'rss.txt')
  let clientPeakKib = 0
  const measured = async (args) => {
    await run('/usr/bin/time', ['-f', '%M', '-o', rssFile, process.execPath, bin, ...args])
    clientPeakKib = Math.max(clientPeakKib, Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop()))
  }
  bench(
    'pipeline send-file',
    () => measured(['send-file', '--dev', '--addr', paddr, '--localpath', source, '--remotepath', 'up.bin']),
    join(remote, 'up.bin'),
  )
  execFileSync('cp', [source, join(remote, 'down.bin')])
  // The 2 GiB just written would otherwise reach the disk ~30 s later (the kernel's writeback
  // delay), in the middle of the rounds, and slow down only the contender that fsyncs (pipeline).
  execFileSync('sync')
  bench(
    'pipeline recv-file',
    () =>
      measured([
        'recv-file',
        '--dev',
        '--addr',
        paddr,
        '--localpath',
        join(dir, 'down.bin'),
        '--remotepath',
        'down.bin',
      ]),
    join(dir, 'down.bin'),
  )
  bench(
    'scp send',
    () =>
      run('scp', [...sshArgs, '-P', String(sshPort), source, `root@127.0.0.1:${join(remote, 'scp-up.bin')}`]),
    join(remote, 'scp-up.bin'),
  )
  bench(
    'scp recv',
    () =>
      run('scp', [
        ...sshArgs,
        '-P',
        String(sshPort),
        `root@127.0.0.1:${join(remote, 'down.bin')}`,
        join(dir, 'scp-down.bin'),
      ]),
    join(dir, 'scp-down.bin'),
  )
  bench(
    'socat raw (no crypto)',
    async () => {
      const port = await freePort()
      const sink = background('socat', [
        '-u',
        `TCP-LISTEN:${port},reuseaddr`,
        `OPEN:${join(dir, 'socat.bin')},creat,trunc`,
      ])
      // Not probed with a connection: socat without fork would take the probe as its one client.
      for (
        let i = 0;
        i < 200 &&
        !execFileSync('ss', ['-ltnH', `sport = :${port}`])
          .toString()
          .trim();
        i++
      ) {
        await sleep(25)
      }
      await run('socat', ['-u', `OPEN:${source}`, `TCP:127.0.0.1:${port}`])
      await new Promise((resolve) => (sink.exitCode !== null ? resolve() : sink.once('exit', resolve)))
    },
    join(dir, 'socat.bin'),
  )

  await runRounds()

  const latency = async (name, file, args) => {
    const samples = []
    for (let i = 0; i < LATENCY_RUNS; i++) samples.push((await timed(() => run(file, args))) * 1000)
    rows.push({ name, unit: 'ms', ...stats(samples) })
    console.error(`${name}: ${samples.map((s) => s.toFixed(0)).join(', ')} ms`)
  }
  await latency('pipeline run -- true', process.execPath, [
    bin,
    'run',
    '--dev',
    '--addr',
    paddr,
    '--',
    'true',
  ])
  await latency('ssh 127.0.0.1 true', 'ssh', [...sshArgs, '-p', String(sshPort), 'root@127.0.0.1', 'true'])

  const by = Object.fromEntries(rows.map((row) => [row.name, row.median]))
  console.log(`\n| benchmark (${MIB} MiB, loopback) | median | min | max | vs scp/ssh |`)
  console.log('| --- | --- | --- | --- | --- |')
  for (const row of rows) {
    const peer =
      row.name === 'pipeline send-file'
        ? by['scp send']
        : row.name === 'pipeline recv-file'
          ? by['scp recv']
          : row.name === 'pipeline run -- true'
            ? by['ssh 127.0.0.1 true']
            : undefined
    const ratio = peer ? `${(row.unit === 'ms' ? peer / row.median : row.median / peer).toFixed(2)}x` : ''
    const f = (n) => `${n.toFixed(0)} ${row.unit}`
    console.log(`| ${row.name} | ${f(row.median)} | ${f(row.min)} | ${f(row.max)} | ${ratio} |`)
  }
  const serverPeak = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${listener.pid}/status`, 'utf8'))?.[1]
  console.log(`\nsource size ${statSync(source).size} bytes; TLS suites: ${await suites()}`)
  console.log(
    `load average (1 min): ${loadAtStart.toFixed(1)} at start, ${loadavg()[0].toFixed(1)} at end, on ${cpus().length} CPUs`,
  )
  console.log(
    `peak RSS: pipeline client ${(clientPeakKib / 1024).toFixed(0)} MiB, server ${(Number(serverPeak) / 1024).toFixed(0)} MiB`,
  )
}

async function suites() {
  const { preferredCipherSuites } = await import('../dist/index.js')
  return preferredCipherSuites()
}

// Ctrl-C still removes the 1 GiB files and stops sshd.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
    process.exit(130)
  })
}

try {
  await main()
} finally {
  for (const child of children) child.kill('SIGTERM')
  await sleep(300)
  rmSync(dir, { recursive: true, force: true })
}
