#!/usr/bin/env node
// pnpm start: the pf-proxy pair a Nitro deployment runs, in vsock dev mode (Unix sockets stand in
// for vsock, so no enclave and no root are needed):
//
//   client ──TCP──▶ pf-proxy ip-to-vsock ──vsock://3:5000 (dev: DIR/3_5000.sock)──▶
//          pf-proxy vsock-to-ip ──TCP──▶ echo server
//
// It pushes a few payloads through, checks every byte came back, prints what moved and exits 0.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)
const bin = join(dirname(require.resolve('@enclave/pf-proxy/package.json')), 'dist/main.js')
const devDir = mkdtempSync(join(tmpdir(), 'pf-proxy-demo-'))
const children = []

/** Starts a pf-proxy tool; resolves with its listen address once it logs "pf-proxy ready". */
function startProxy(args) {
  const child = spawn(process.execPath, [bin, ...args, '--dev-dir', devDir, '--log-level', 'info'], {
    stdio: ['ignore', 'inherit', 'pipe'],
  })
  children.push(child)
  const lines = []
  const other = [] // stderr lines that are not JSON logs (e.g. Node warnings): shown, not parsed
  let buffered = ''
  // Resolves once stderr is fully read and the process is gone (never rejects).
  const closed = new Promise((resolve) => child.once('close', (code, signal) => resolve([code, signal])))
  return new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      buffered += chunk
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const text = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        const line = parseLogLine(text)
        if (!line) {
          if (text.trim()) {
            other.push(text)
            process.stderr.write(`[pf-proxy ${args[0]}] ${text}\n`)
          }
          continue
        }
        lines.push(line)
        if (line.msg === 'pf-proxy ready')
          resolve({ name: args[0], child, lines, closed, listen: line.listen })
      }
    })
    child.once('exit', (code, signal) => {
      const said = other.length > 0 ? `: ${other.slice(-3).join(' | ')}` : ''
      reject(new Error(`pf-proxy ${args[0]} exited with ${code ?? signal} before it was ready${said}`))
    })
  })
}

/** A JSON log line as an object, or undefined for anything else. */
function parseLogLine(text) {
  try {
    const value = JSON.parse(text)
    return value !== null && typeof value === 'object' ? value : undefined
  } catch {
    return undefined
  }
}

/** SIGTERM, wait for the drain, and return the stats of its "stopped" log line. */
async function stopProxy({ name, child, lines, closed }) {
  child.kill('SIGTERM')
  const [code, signal] = await closed
  if (code !== 0) throw new Error(`pf-proxy ${name} exited with ${code ?? signal}, expected 0`)
  const stats = lines.find((line) => line.msg === 'stopped')?.stats
  if (!stats || typeof stats.bytesIn !== 'number' || typeof stats.bytesOut !== 'number') {
    throw new Error(`pf-proxy ${name} exited without logging its "stopped" line with byte counts`)
  }
  return stats
}

/** One client connection: sends `payload`, half-closes, reads the echo until the end. */
async function exchange(port, payload) {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  await once(socket, 'connect')
  const hash = createHash('sha256')
  let received = 0
  socket.on('data', (chunk) => {
    received += chunk.length
    hash.update(chunk)
  })
  socket.end(payload)
  await once(socket, 'end')
  socket.destroy()
  const ok = hash.digest('hex') === createHash('sha256').update(payload).digest('hex')
  return { sent: payload.length, received, ok }
}

async function main() {
  const echo = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
  echo.listen(0, '127.0.0.1')
  await once(echo, 'listening')
  const echoPort = echo.address().port

  const vsockToIp = await startProxy([
    'vsock-to-ip',
    '--vsock-addr',
    '3:5000',
    '--ip-addr',
    `127.0.0.1:${echoPort}`,
  ])
  const ipToVsock = await startProxy(['ip-to-vsock', '--ip-addr', '127.0.0.1:0', '--vsock-addr', '3:5000'])
  const port = Number(ipToVsock.listen.slice(ipToVsock.listen.lastIndexOf(':') + 1))
  console.log(`echo server        tcp://127.0.0.1:${echoPort}`)
  console.log(`vsock-to-ip        listens on ${vsockToIp.listen} (dev mode: ${join(devDir, '3_5000.sock')})`)
  console.log(`ip-to-vsock        listens on ${ipToVsock.listen}`)

  const sizes = [11, 64 * 1024, 1024 * 1024, 8 * 1024 * 1024]
  const started = performance.now()
  const results = await Promise.all(
    sizes.map((size, i) => exchange(port, size === 11 ? Buffer.from('hello vsock') : Buffer.alloc(size, i))),
  )
  const ms = performance.now() - started
  const [outer, inner] = [await stopProxy(ipToVsock), await stopProxy(vsockToIp)]
  echo.close()

  console.log('\nconnection  sent B      echoed B    intact')
  for (const [i, r] of results.entries()) {
    console.log(
      `${String(i + 1).padEnd(12)}${String(r.sent).padEnd(12)}${String(r.received).padEnd(12)}${r.ok}`,
    )
  }
  const total = results.reduce((sum, r) => sum + r.sent, 0)
  console.log(`\nmoved ${total} B each way over ${results.length} connections in ${ms.toFixed(0)} ms`)
  for (const [name, s] of [
    ['ip-to-vsock', outer],
    ['vsock-to-ip', inner],
  ]) {
    console.log(
      `${name.padEnd(12)} connections ${s.total} (errors ${s.errors}), bytes in ${s.bytesIn}, bytes out ${s.bytesOut}`,
    )
  }
  const ok = results.every((r) => r.ok) && outer.bytesIn === total && inner.bytesOut === total
  if (!ok) throw new Error('some bytes did not make the round trip')
}

try {
  await main()
} catch (error) {
  console.error(`demo failed: ${error.stack ?? error}`)
  process.exitCode = 1
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  rmSync(devDir, { recursive: true, force: true })
}
