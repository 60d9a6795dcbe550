#!/usr/bin/env node
// Single-stream throughput through this package's sockets against raw node:net sockets on the
// same transport (the physical limit here: the package hands out net.Sockets, so the ratio should
// be ~1.0). Not a test: run after `pnpm build`, on a quiet machine.
//   node bench/throughput.mjs [MiB per sample, default 256] [samples, default 3]
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, formatAddress, listen, serverAddressOf } from '../dist/index.js'

const mib = Number(process.argv[2] ?? 256)
const samples = Number(process.argv[3] ?? 3)
const dir = mkdtempSync(join(tmpdir(), 'vt-bench-'))
const chunk = Buffer.alloc(256 * 1024, 1)

async function pump(socket, bytes) {
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!socket.write(chunk)) await once(socket, 'drain')
  }
  socket.end()
}

async function measure(openServer, dial) {
  const bytes = mib * 1024 * 1024
  const { server, address } = await openServer((s) => s.resume())
  const rates = []
  for (let i = 0; i < samples; i++) {
    const socket = await dial(address)
    const started = process.hrtime.bigint()
    const closed = once(socket, 'close')
    socket.resume()
    await pump(socket, bytes)
    await closed
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    rates.push(mib / seconds)
  }
  server.close()
  rates.sort((a, b) => a - b)
  return { median: rates[Math.floor(rates.length / 2)], min: rates[0], max: rates.at(-1) }
}

const raw = {
  tcp: () =>
    measure(
      async (onConn) => {
        const server = net.createServer(onConn)
        await new Promise((r) => server.listen(0, '127.0.0.1', r))
        return { server, address: server.address().port }
      },
      async (port) => {
        const s = net.connect(port, '127.0.0.1')
        await once(s, 'connect')
        return s
      },
    ),
  unix: () =>
    measure(
      async (onConn) => {
        const server = net.createServer(onConn)
        const path = join(dir, 'raw.sock')
        await new Promise((r) => server.listen(path, r))
        return { server, address: path }
      },
      async (path) => {
        const s = net.connect(path)
        await once(s, 'connect')
        return s
      },
    ),
}

const ours = (address, options = {}) =>
  measure(
    async (onConn) => {
      const server = await listen(address, options, onConn)
      return { server, address: formatAddress(serverAddressOf(server)) }
    },
    (a) => connect(a, options),
  )

const rows = [
  ['tcp', await raw.tcp(), await ours('tcp://127.0.0.1:0')],
  ['unix', await raw.unix(), await ours(`unix://${join(dir, 'ours.sock')}`)],
  ['vsock (dev mode) vs raw unix', await raw.unix(), await ours('vsock://any:0', { dev: { dir } })],
]
rmSync(dir, { recursive: true, force: true })

console.log(`single stream, ${mib} MiB per sample, ${samples} samples (median [min-max] MiB/s)`)
console.log('| transport | raw node:net | @enclave/vsock-transport | ours/raw |')
console.log('| --- | --- | --- | --- |')
const fmt = (r) => `${r.median.toFixed(0)} [${r.min.toFixed(0)}-${r.max.toFixed(0)}]`
for (const [name, a, b] of rows)
  console.log(`| ${name} | ${fmt(a)} | ${fmt(b)} | ${(b.median / a.median).toFixed(2)} |`)
