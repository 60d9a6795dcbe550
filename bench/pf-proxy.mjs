#!/usr/bin/env node
// pnpm bench: pf-proxy against socat and against a direct connection, side by side.
//
//   ours:   client ─TCP─▶ pf-proxy ip-to-vsock ─Unix socket─▶ pf-proxy vsock-to-ip ─TCP─▶ target
//   socat:  client ─TCP─▶ socat TCP-LISTEN,fork ─Unix socket─▶ socat UNIX-LISTEN,fork ─TCP─▶ target
//   direct: client ─TCP─▶ target                                     (the physical limit here)
//
// Two measurements per chain, one run: single-stream throughput (--size MiB, default 1024) and
// --connections concurrent connections (default 1000) doing small request/response for
// --duration seconds (default 5): requests/s, latency p50 and p99. Prints one table with the
// ratios ours/socat and ours/direct and the targets of the project brief.
// Not part of the test suite. Build first (pnpm build); needs socat.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = dirname(fileURLToPath(import.meta.url))
const BIN = join(here, '../apps/pf-proxy/dist/main.js')

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    connections: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '5' },
    'request-size': { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (flags.help) {
  console.log(
    `usage: node bench/pf-proxy.mjs [--size MiB] [--connections N] [--duration s] [--request-size B] [--only ours,socat,direct]`,
  )
  process.exit(0)
}
const SIZE = Math.round(Number(flags.size) * 1024 * 1024)
const CONNECTIONS = Number(flags.connections)
const DURATION_MS = Number(flags.duration) * 1000
const REQUEST_SIZE = Number(flags['request-size'])
const ROUNDS = Number(flags.rounds)
for (const [name, value] of [
  ['--size', SIZE],
  ['--connections', CONNECTIONS],
  ['--duration', DURATION_MS],
  ['--request-size', REQUEST_SIZE],
  ['--rounds', ROUNDS],
]) {
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`bench: ${name} must be a positive number`)
    process.exit(2)
  }
}
if (!existsSync(BIN)) {
  console.error(`bench: ${BIN} is missing; run pnpm build first`)
  process.exit(2)
}
if (spawnSync('socat', ['-V']).status !== 0) {
  console.error('bench: socat is not installed (apt-get install socat)')
  process.exit(2)
}

const dir = mkdtempSync(join(tmpdir(), 'pf-proxy-bench-'))
const children = new Set()

function launch(command, args, { ready, group = false } = {}) {
  // group: its own process group, so stop() also ends the children socat forks per connection.
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: group })
  child.group = group
  children.add(child)
  child.on('exit', () => children.delete(child))
  let err = ''
  child.stderr.on('data', (chunk) => {
    err += chunk
    if (err.length > 100_000) err = err.slice(-50_000)
  })
  if (!ready) return { child, ready: Promise.resolve('') }
  return {
    child,
    ready: new Promise((resolve, reject) => {
      let text = ''
      const stream = ready === 'stderr' ? child.stderr : child.stdout
      stream.on('data', function onData(chunk) {
        text += chunk
        const line =
          ready === 'stderr'
            ? text.split('\n').find((l) => l.includes('"pf-proxy ready"'))
            : text.split('\n')[0]
        if (line && (ready === 'stderr' || text.includes('\n'))) {
          stream.off('data', onData)
          resolve(line)
        }
      })
      child.once('exit', (code) => reject(new Error(`${command} ${args[0]} exited with ${code}: ${err}`)))
    }),
  }
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  if (child.group) process.kill(-child.pid, 'SIGTERM')
  else child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await once(child, 'exit')
  clearTimeout(timer)
}

async function waitForPort(port) {
  for (let i = 0; i < 1200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after 30 s`)
}

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  await new Promise((r) => server.close(r))
  return port
}

/** Starts a chain in front of the target; resolves with its entry port and a stop function. */
async function startChain(kind, targetPort) {
  if (kind === 'direct') return { port: targetPort, groups: [], stop: async () => {} }
  const sock = join(dir, `${kind}.sock`)
  if (kind === 'ours') {
    const common = ['--log-level', 'warn', '--max-connections', String(CONNECTIONS + 100)]
    const inner = launch(
      process.execPath,
      [BIN, 'vsock-to-ip', '-v', `unix://${sock}`, '-i', `127.0.0.1:${targetPort}`, ...common],
      { group: true },
    )
    await waitForUnix(sock)
    const port = await freePort()
    const outer = launch(
      process.execPath,
      [BIN, 'ip-to-vsock', '-i', `127.0.0.1:${port}`, '-v', `unix://${sock}`, ...common],
      { group: true },
    )
    await waitForPort(port)
    return {
      port,
      groups: [inner.child.pid, outer.child.pid],
      stop: async () => Promise.all([stop(outer.child), stop(inner.child)]),
    }
  }
  const inner = launch('socat', [`UNIX-LISTEN:${sock},fork,backlog=1024`, `TCP:127.0.0.1:${targetPort}`], {
    group: true,
  })
  await waitForUnix(sock)
  const port = await freePort()
  const outer = launch(
    'socat',
    [`TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr,backlog=1024`, `UNIX-CONNECT:${sock}`],
    {
      group: true,
    },
  )
  await waitForPort(port)
  return {
    port,
    groups: [inner.child.pid, outer.child.pid],
    stop: async () => Promise.all([stop(outer.child), stop(inner.child)]),
  }
}

async function waitForUnix(path) {
  for (let i = 0; i < 1200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(path)
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`nothing listens on ${path} after 30 s`)
}

const TICK_MS = 1000 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100)

/**
 * CPU time (ms) used so far by the chain's processes: every live process of their process groups
 * (socat's per-connection children included; all threads, from schedstat in ns, because a child
 * that served a few requests rounds to zero clock ticks) plus what the group leaders reaped from
 * children that already exited. Independent of how much CPU the rest of the machine leaves us.
 */
function chainCpuMs(groups) {
  if (groups.length === 0) return 0
  const wanted = new Set(groups)
  let ms = 0
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
      const pgrp = Number(fields[2])
      if (!wanted.has(pgrp)) continue
      for (const task of readdirSync(`/proc/${entry}/task`)) {
        ms += Number(readFileSync(`/proc/${entry}/task/${task}/schedstat`, 'utf8').split(' ')[0]) / 1e6
      }
      if (Number(entry) === pgrp) ms += (Number(fields[13]) + Number(fields[14])) * TICK_MS
    } catch {
      // The process exited while we looked: its time moves to its parent's cutime.
    }
  }
  return ms
}

/**
 * One connection sends SIZE bytes into the sink; time until the sink's byte count comes back.
 * A short untimed transfer first (every chain alike), so one-off costs (a proxy's first
 * connection and code paths, the kernel's first buffers) are not part of the measurement.
 */
async function throughput(port, groups) {
  await sinkTransfer(port, Math.min(SIZE, 32 * 1024 * 1024))
  const cpuBefore = chainCpuMs(groups)
  const started = performance.now()
  await sinkTransfer(port, SIZE)
  const seconds = (performance.now() - started) / 1000
  const cpuMs = chainCpuMs(groups) - cpuBefore
  return { mibps: SIZE / (1024 * 1024) / seconds, cpuPerGiB: cpuMs / 1000 / (SIZE / 1024 ** 3) }
}

async function sinkTransfer(port, size) {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  await once(socket, 'connect')
  const chunk = Buffer.alloc(256 * 1024, 0x61)
  const reply = new Promise((resolve, reject) => {
    const parts = []
    socket.on('data', (c) => parts.push(c))
    socket.on('end', () => resolve(Buffer.concat(parts)))
    socket.on('error', reject)
  })
  socket.write('S')
  let sent = 0
  while (sent < size) {
    const n = Math.min(chunk.length, size - sent)
    sent += n
    if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await once(socket, 'drain')
  }
  socket.end()
  const counted = Number((await reply).readBigUInt64BE(0))
  socket.destroy()
  if (counted !== size) throw new Error(`sink counted ${counted} bytes, expected ${size}`)
}

/** CONNECTIONS connections, each in a request/response loop for DURATION_MS. */
async function requestResponse(port, groups) {
  const request = Buffer.alloc(REQUEST_SIZE, 0x72)
  const sockets = []
  for (let i = 0; i < CONNECTIONS; i += 50) {
    const batch = []
    for (let j = i; j < Math.min(CONNECTIONS, i + 50); j++) {
      const s = net.connect({ port, host: '127.0.0.1', noDelay: true })
      s.on('error', () => {})
      batch.push(once(s, 'connect').then(() => s))
    }
    sockets.push(...(await Promise.all(batch)))
  }
  const exchange = (socket) =>
    new Promise((resolve, reject) => {
      let got = 0
      const onData = (chunk) => {
        got += chunk.length
        if (got >= REQUEST_SIZE) {
          socket.off('data', onData)
          socket.off('close', onClose)
          resolve()
        }
      }
      const onClose = () => reject(new Error('connection closed mid-request'))
      socket.on('data', onData)
      socket.once('close', onClose)
      socket.write(request)
    })
  // Echo mode, and one warm-up round trip each so setup (socat's forks, our dials) is not timed.
  for (const s of sockets) s.write('E')
  await Promise.all(sockets.map(exchange))
  const latencies = []
  let failures = 0
  const cpuBefore = chainCpuMs(groups)
  const deadline = performance.now() + DURATION_MS
  const started = performance.now()
  await Promise.all(
    sockets.map(async (socket) => {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        try {
          await exchange(socket)
        } catch {
          failures += 1
          return
        }
        latencies.push(performance.now() - t0)
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  const cpuMs = chainCpuMs(groups) - cpuBefore
  for (const s of sockets) s.destroy()
  latencies.sort((a, b) => a - b)
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN
  return {
    rps: latencies.length / seconds,
    p50: at(0.5),
    p99: at(0.99),
    cpuPerKReq: (cpuMs / latencies.length) * 1000,
    failures,
  }
}

async function main() {
  const target = launch(process.execPath, [join(here, 'target.mjs')], { ready: 'stdout' })
  const targetPort = Number((await target.ready).trim())
  const kinds = (flags.only ?? 'direct,socat,ours').split(',')
  const samples = Object.fromEntries(kinds.map((kind) => [kind, []]))
  console.log(
    `pf-proxy bench: ${SIZE / 1024 / 1024} MiB single stream; ${CONNECTIONS} connections x ${REQUEST_SIZE} B request/response for ${DURATION_MS / 1000} s; ${ROUNDS} rounds (chains interleaved, median reported); node ${process.version}`,
  )
  // Rounds interleave the chains so that load from elsewhere on the machine hits them alike.
  for (let round = 1; round <= ROUNDS; round++) {
    for (const kind of kinds) {
      const chain = await startChain(kind, targetPort)
      try {
        const { mibps, cpuPerGiB } = await throughput(chain.port, chain.groups)
        const rr = await requestResponse(chain.port, chain.groups)
        console.log(
          `  round ${round} ${kind.padEnd(7)} ${mibps.toFixed(0).padStart(5)} MiB/s ${rr.rps.toFixed(0).padStart(6)} req/s  p50 ${rr.p50.toFixed(2)} ms  p99 ${rr.p99.toFixed(2)} ms${kind === 'direct' ? '' : `  proxy cpu ${cpuPerGiB.toFixed(2)} s/GiB ${rr.cpuPerKReq.toFixed(0)} ms/1k req`}${rr.failures ? `  ${rr.failures} failed connections` : ''}`,
        )
        samples[kind].push({ mibps, cpuPerGiB, ...rr })
      } finally {
        await chain.stop()
      }
    }
  }
  const median = (values) => {
    const sorted = [...values].sort((a, b) => a - b)
    return sorted[Math.floor(sorted.length / 2)]
  }
  const results = {}
  for (const kind of kinds) {
    const runs = samples[kind]
    results[kind] = Object.fromEntries(
      ['mibps', 'rps', 'p50', 'p99', 'cpuPerGiB', 'cpuPerKReq'].map((key) => [
        key,
        median(runs.map((r) => r[key])),
      ]),
    )
  }
  await stop(target.child)
  printTable(results)
}

function printTable(results) {
  const { ours, socat, direct } = results
  const rows = [
    ['throughput (MiB/s)', 'mibps', 'higher'],
    ['requests/s', 'rps', 'higher'],
    ['latency p50 (ms)', 'p50', 'lower'],
    ['latency p99 (ms)', 'p99', 'lower'],
    ['proxy CPU s per GiB', 'cpuPerGiB', 'lower'],
    ['proxy CPU ms/1k req', 'cpuPerKReq', 'lower'],
  ]
  const fmt = (v, digits) => (v === undefined ? '-' : v.toFixed(digits))
  const ratio = (a, b) => (a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}x`)
  console.log('')
  console.log(
    `| ${'metric'.padEnd(20)} | ${'direct'.padStart(9)} | ${'socat'.padStart(9)} | ${'ours'.padStart(9)} | ours/socat | ours/direct |`,
  )
  console.log(
    `|${'-'.repeat(22)}|${'-'.repeat(11)}|${'-'.repeat(11)}|${'-'.repeat(11)}|------------|-------------|`,
  )
  for (const [label, key] of rows) {
    const digits = key === 'p50' || key === 'p99' || key === 'cpuPerGiB' ? 2 : 0
    // A direct connection has no proxy: no proxy CPU to show.
    const shown = key.startsWith('cpu') ? { ...direct, [key]: undefined } : direct
    console.log(
      `| ${label.padEnd(20)} | ${fmt(shown?.[key], digits).padStart(9)} | ${fmt(socat?.[key], digits).padStart(9)} | ${fmt(ours?.[key], digits).padStart(9)} | ${ratio(ours?.[key], socat?.[key]).padStart(10)} | ${ratio(ours?.[key], shown?.[key]).padStart(11)} |`,
    )
  }
  if (ours && socat && direct) {
    const check = (ok, text) => console.log(`${ok ? 'PASS' : 'MISS'}  ${text}`)
    console.log('')
    check(ours.mibps >= socat.mibps, 'throughput >= socat')
    check(ours.rps >= socat.rps, 'requests/s >= socat')
    check(ours.p99 <= socat.p99, 'p99 latency <= socat')
    check(ours.mibps >= 0.8 * direct.mibps, 'throughput >= 0.8x direct')
    check(ours.rps >= 0.8 * direct.rps, 'requests/s >= 0.8x direct')
  }
}

try {
  await main()
} catch (error) {
  console.error(`bench failed: ${error.stack ?? error}`)
  process.exitCode = 1
} finally {
  for (const child of children) {
    try {
      if (child.group) process.kill(-child.pid, 'SIGKILL')
      else child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true })
}
