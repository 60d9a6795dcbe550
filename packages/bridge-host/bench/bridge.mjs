#!/usr/bin/env node
// Bridge benchmarks, in dev mode (vsock emulated with Unix sockets), not part of the test suite.
// Build first (pnpm build); socat is optional.
//
// 1. Handshake: time from the enclave's connectBridge() to finish() resolving (tunnels ready),
//    against the enclave-bridge CLI running as its own process. Target: under 50 ms on loopback.
// 2. Server-tunnel throughput, one stream of --size MiB, client → TCP → proxy → Unix socket → sink:
//      bridge:   enclave-bridge CLI server tunnel (host TCP → enclave vsock)
//      pf-proxy: pf-proxy ip-to-vsock (the same forwarding engine, no bridge)
//      socat:    socat TCP-LISTEN,fork UNIX-CONNECT
//      direct:   client → Unix socket → sink (the physical limit here)
//
//   node packages/bridge-host/bench/bridge.mjs [--size 512] [--runs 3] [--handshakes 30]
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { connectBridge } from '@enclave/bridge-enclave'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const BRIDGE = join(root, 'apps/enclave-bridge/dist/main.js')
const PF_PROXY = join(root, 'apps/pf-proxy/dist/main.js')

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string', default: '512' },
    runs: { type: 'string', default: '3' },
    handshakes: { type: 'string', default: '30' },
  },
})
const SIZE = Math.round(Number(flags.size) * 1024 * 1024)
const RUNS = Number(flags.runs)
const HANDSHAKES = Number(flags.handshakes)
if (!(SIZE > 0 && RUNS > 0 && HANDSHAKES > 0)) {
  console.error('bench: --size, --runs and --handshakes must be positive')
  process.exit(2)
}

const dir = mkdtempSync(join(tmpdir(), 'bridge-bench-'))
const children = new Set()
function launch(file, args, env = {}) {
  const child = spawn(
    file.endsWith('.js') ? process.execPath : file,
    file.endsWith('.js') ? [file, ...args] : args,
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    },
  )
  children.add(child)
  child.on('exit', () => children.delete(child))
  child.stderr.resume()
  return child
}
function cleanup() {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
}
process.on('exit', cleanup)

function freePort() {
  return new Promise((ok) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => ok(port))
    })
  })
}
async function waitConnectable(opts, deadline = Date.now() + 10_000) {
  for (;;) {
    const ok = await new Promise((r) => {
      const s = net.connect(opts, () => {
        s.destroy()
        r(true)
      })
      s.on('error', () => r(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listens on ${JSON.stringify(opts)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

// The "enclave" sink: counts bytes, answers the count when the client half-closes.
const sinkPath = join(dir, '16_5001.sock')
const sink = net.createServer({ allowHalfOpen: true }, (s) => {
  let n = 0
  s.on('data', (c) => {
    n += c.length
  })
  s.on('end', () => s.end(`${n}\n`))
  s.on('error', () => {})
})
await new Promise((r) => sink.listen(sinkPath, r))

const chunk = Buffer.alloc(256 * 1024, 0x5a)
async function stream(opts) {
  const s = net.connect({ ...opts, allowHalfOpen: true })
  await new Promise((r, j) => s.once('connect', r).once('error', j))
  const start = performance.now()
  let answer = ''
  s.on('data', (d) => {
    answer += d
  })
  const ended = new Promise((r) => s.once('end', r))
  for (let sent = 0; sent < SIZE; sent += chunk.length) {
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r))
  }
  s.end()
  await ended
  const secs = (performance.now() - start) / 1000
  s.destroy()
  if (Number(answer) !== SIZE) throw new Error(`sink got ${answer.trim()} bytes, expected ${SIZE}`)
  return SIZE / 1024 / 1024 / secs
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]

// --- 1. handshake latency against the CLI host ---------------------------------------------------
const tcpPort = await freePort()
launch(BRIDGE, ['--dev-dir', dir, '--dev-cid', '3', '--no-monitor', '--log-level', 'warn'])
await waitConnectable({ path: join(dir, '3_5000.sock') })
const enclaveDev = { dir, cid: 16 }
const times = []
for (let i = 0; i < HANDSHAKES; i++) {
  const t0 = performance.now()
  const hs = await connectBridge({ dev: enclaveDev })
  const session = await hs.finish(
    {
      appName: 'bench',
      watchdog: { enclaveId: crypto.randomUUID(), intervalMs: 60_000 },
      logger: { level: '' },
      servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: tcpPort }],
      clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }],
    },
    { watchdog: i === HANDSHAKES - 1 },
  )
  times.push(performance.now() - t0)
  if (i < HANDSHAKES - 1) session.close()
}
console.log(
  `handshake (connect → tunnels ready, ${HANDSHAKES} runs, 1 server + 1 client tunnel): ` +
    `median ${median(times).toFixed(1)} ms, p90 ${pct(times, 0.9).toFixed(1)} ms, ` +
    `min ${Math.min(...times).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms (target < 50 ms)`,
)

// --- 2. server-tunnel throughput -------------------------------------------------------------------
const chains = [{ name: 'bridge', opts: { host: '127.0.0.1', port: tcpPort } }]
if (spawnSync(process.execPath, [PF_PROXY, '--help']).status === 0) {
  const p = await freePort()
  launch(PF_PROXY, ['ip-to-vsock', '-i', `127.0.0.1:${p}`, '-v', `unix://${sinkPath}`, '--log-level', 'warn'])
  chains.push({ name: 'pf-proxy', opts: { host: '127.0.0.1', port: p } })
}
if (spawnSync('socat', ['-V']).status === 0) {
  const p = await freePort()
  launch('socat', [`TCP-LISTEN:${p},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${sinkPath}`])
  chains.push({ name: 'socat', opts: { host: '127.0.0.1', port: p } })
}
chains.push({ name: 'direct', opts: { path: sinkPath } })

const rows = []
for (const c of chains) {
  await waitConnectable(c.opts)
  const samples = []
  for (let r = 0; r < RUNS; r++) samples.push(await stream(c.opts))
  rows.push({ name: c.name, samples, median: median(samples) })
}
const socat = rows.find((r) => r.name === 'socat')
console.log(`\nserver-tunnel throughput, ${SIZE / 1024 / 1024} MiB single stream, ${RUNS} runs (MiB/s):`)
console.log('chain      median    min      max      vs socat')
for (const r of rows) {
  const ratio = socat ? `${(r.median / socat.median).toFixed(2)}x` : '-'
  console.log(
    `${r.name.padEnd(10)} ${r.median.toFixed(0).padStart(6)}   ${Math.min(...r.samples)
      .toFixed(0)
      .padStart(6)}   ` +
      `${Math.max(...r.samples)
        .toFixed(0)
        .padStart(6)}   ${ratio}`,
  )
}
sink.close()
process.exit(0)
