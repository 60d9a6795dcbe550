// Egress and ingress side by side with direct connections: throughput and latency, one table.
// Run: pnpm --filter @enclave/egress build && pnpm --filter @enclave/ingress build && node packages/egress/bench/network.mjs
// vsock is replaced by vsock-transport's dev mode (Unix sockets), so this measures the proxies' own
// cost, not the hypervisor's. Every loop is bounded in count and time.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls'
import { startIngressEnclave, startIngressHost } from '@enclave/ingress'
import { startEgressHost, startEgressProxy } from '../dist/index.js'

const MB = 1024 * 1024
const BULK_BYTES = Number(process.env.BENCH_BULK_MB ?? 64) * MB
const PINGS = Number(process.env.BENCH_PINGS ?? 2000)
const CONNS = Number(process.env.BENCH_CONNS ?? 200)
const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const DEADLINE = Date.now() + Number(process.env.BENCH_MAX_SECONDS ?? 240) * 1000

const dir = mkdtempSync(join(tmpdir(), 'enclave-net-bench-'))
const listen = (server) => new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)))

// The target: counts bulk bytes and acknowledges with one byte; echoes pings ('p' mode).
const onTarget = (socket) => {
  let mode
  let received = 0
  let expected = 0
  socket.on('data', (chunk) => {
    if (mode === undefined) {
      mode = chunk[0] === 0x62 ? 'bulk' : 'ping'
      if (mode === 'bulk') {
        expected = chunk.readUInt32BE(1) * MB
        chunk = chunk.subarray(5)
      }
    }
    if (mode === 'ping') socket.write(chunk)
    else {
      received += chunk.length
      if (received >= expected) socket.end('k')
    }
  })
  socket.on('error', () => {})
}
const target = createServer(onTarget)
const targetPort = await listen(target)
// The same target behind TLS (the direct competitor of TLS-terminating ingress).
const certFile = join(dir, 'cert.pem')
const keyFile = join(dir, 'key.pem')
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
  ],
  { stdio: 'ignore' },
)
const tlsTarget = createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, onTarget)
const tlsTargetPort = await listen(tlsTarget)

/** Opens a socket to the target through `path`: { port, preface? } or a CONNECT proxy. */
function open(path) {
  if (path.tls) {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ port: path.port, host: '127.0.0.1', rejectUnauthorized: false }, () =>
        resolve(socket),
      )
      socket.once('error', reject)
    })
  }
  return new Promise((resolve, reject) => {
    const socket = connect(path.port, '127.0.0.1')
    socket.setNoDelay(true)
    socket.once('error', reject)
    socket.once('connect', () => {
      if (!path.proxy) return resolve(socket)
      socket.write(`CONNECT host:${targetPort} HTTP/1.1\r\nHost: host:${targetPort}\r\n\r\n`)
      let head = ''
      const onData = (chunk) => {
        head += chunk.toString('latin1')
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return
        socket.off('data', onData)
        if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(head.split('\r\n')[0]))
        socket.pause()
        resolve(socket)
      }
      socket.on('data', onData)
    })
  })
}

async function bulk(path) {
  const mb = BULK_BYTES / MB
  const socket = await open(path)
  const start = performance.now()
  const done = new Promise((resolve) => socket.once('end', resolve))
  socket.resume()
  const header = Buffer.alloc(5)
  header[0] = 0x62
  header.writeUInt32BE(mb, 1)
  socket.write(header)
  const chunk = Buffer.alloc(256 * 1024, 7)
  for (let sent = 0; sent < BULK_BYTES; sent += chunk.length) {
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r))
  }
  await done
  socket.destroy()
  return BULK_BYTES / MB / ((performance.now() - start) / 1000)
}

async function pings(path) {
  const socket = await open(path)
  socket.resume()
  const times = []
  for (let i = 0; i < PINGS && Date.now() < DEADLINE; i++) {
    const t = performance.now()
    await new Promise((resolve) => {
      socket.once('data', resolve)
      socket.write('p')
    })
    times.push(performance.now() - t)
  }
  socket.destroy()
  times.sort((a, b) => a - b)
  return {
    p50: times[Math.floor(times.length / 2)] * 1000,
    p99: times[Math.floor(times.length * 0.99)] * 1000,
  }
}

async function setups(path) {
  const times = []
  for (let i = 0; i < CONNS && Date.now() < DEADLINE; i++) {
    const t = performance.now()
    const socket = await open(path)
    socket.resume()
    await new Promise((resolve) => {
      socket.once('data', resolve)
      socket.write('p')
    })
    times.push(performance.now() - t)
    socket.destroy()
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)] * 1000
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const spread = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`

async function measure(path) {
  const tput = []
  const p50 = []
  const p99 = []
  const setup = []
  for (let r = 0; r < RUNS && Date.now() < DEADLINE; r++) {
    tput.push(await bulk(path))
    const p = await pings(path)
    p50.push(p.p50)
    p99.push(p.p99)
    setup.push(await setups(path))
  }
  return { tput, p50, p99, setup }
}

// Egress chain: CONNECT proxy in "the enclave" → dev vsock → host half → target.
const policy = { allow: ['host'] }
const egressHost = await startEgressHost({ policy, dev: { dir } })
const egressProxy = await startEgressProxy({ policy, port: 0, dev: { dir } })
// Ingress chain: host TCP → dev vsock → enclave half → target.
const probe = createServer()
const ingressPort = await listen(probe)
await new Promise((r) => probe.close(r))
const CID = 16
const ingressEnclave = await startIngressEnclave({
  listenPort: ingressPort,
  appPort: targetPort,
  dev: { dir, cid: CID },
})
const ingressHost = await startIngressHost({
  listenPort: ingressPort,
  enclaveCid: CID,
  listenHost: '127.0.0.1',
  dev: { dir },
})
const probe2 = createServer()
const tlsIngressPort = await listen(probe2)
await new Promise((r) => probe2.close(r))
const tlsIngressEnclave = await startIngressEnclave({
  listenPort: tlsIngressPort,
  appPort: targetPort,
  tls: { certFile, keyFile },
  dev: { dir, cid: CID },
})
const tlsIngressHost = await startIngressHost({
  listenPort: tlsIngressPort,
  enclaveCid: CID,
  listenHost: '127.0.0.1',
  dev: { dir },
})

const paths = [
  ['direct TCP', { port: targetPort }],
  ['egress (CONNECT → vsock → host)', { port: egressProxy.port, proxy: true }],
  ['ingress (host → vsock → enclave)', { port: ingressPort }],
  ['direct TLS', { port: tlsTargetPort, tls: true }],
  ['ingress TLS (terminated in enclave)', { port: tlsIngressPort, tls: true }],
]
const results = []
for (const [name, path] of paths) results.push([name, await measure(path)])
// Plain paths compare with direct TCP, TLS paths with direct TLS.
const baseOf = (name) => (name.includes('TLS') ? results[3][1] : results[0][1])

console.log(
  `\nbulk ${BULK_BYTES / MB} MiB, ${PINGS} pings, ${CONNS} connections, ${RUNS} runs; median (min–max)\n`,
)
console.log('| path | MiB/s | ratio | ping p50 µs | p99 µs | ratio p50 | connect+1st byte µs | ratio |')
console.log('|---|---|---|---|---|---|---|---|')
for (const [name, r] of results) {
  const base = baseOf(name)
  console.log(
    `| ${name} | ${median(r.tput).toFixed(0)} (${spread(r.tput)}) | ${(median(r.tput) / median(base.tput)).toFixed(2)} | ${median(r.p50).toFixed(0)} (${spread(r.p50)}) | ${median(r.p99).toFixed(0)} | ${(median(r.p50) / median(base.p50)).toFixed(2)} | ${median(r.setup).toFixed(0)} (${spread(r.setup)}) | ${(median(r.setup) / median(base.setup)).toFixed(2)} |`,
  )
}

await egressProxy.close()
await egressHost.close()
await ingressHost.close()
await ingressEnclave.close()
await tlsIngressHost.close()
await tlsIngressEnclave.close()
target.close()
tlsTarget.close()
rmSync(dir, { recursive: true, force: true })
