// @ts-check
// Guest suite: the BUILT pf-proxy bin over real AF_VSOCK, as the parent/enclave pair runs it:
// ip-to-vsock -> vsock (CID 1) -> vsock-to-ip -> a TCP echo server, and vsock-to-ip-transparent
// reading Sentient's original-destination header off a real vsock stream. Also: SIGTERM drains
// and exits 0.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { afterEach, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { packageDist, readAll, sha } from './_helpers.mjs'

const bin = fileURLToPath(new URL('../../../../apps/pf-proxy/dist/main.js', import.meta.url))
const { connect } = await import(packageDist('vsock-transport'))
const { encodeOriginalDestination } = await import(packageDist('protocol'))

const LIMIT = { timeout: 60_000 }
let nextVsockPort = 7100

/** @type {Array<() => unknown>} */
const cleanups = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A TCP echo server on 127.0.0.1; returns its port. */
async function echoServer() {
  /** @type {Set<net.Socket>} */
  const sockets = new Set()
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket)
    socket.pipe(socket)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  cleanups.push(() => {
    for (const s of sockets) s.destroy()
    return new Promise((resolve) => server.close(resolve))
  })
  return /** @type {net.AddressInfo} */ (server.address()).port
}

/** A TCP port nothing listens on right now. */
async function freeTcpPort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  const { port } = /** @type {net.AddressInfo} */ (server.address())
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * Starts `pf-proxy <args>` and resolves once it logs that it is ready.
 * @param {string[]} args
 */
function startProxy(args) {
  const child = spawn(process.execPath, [bin, ...args, '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    return exited
  })
  const ready = new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      stderr += chunk
      if (stderr.includes('pf-proxy ready')) resolve(undefined)
    })
    child.once('exit', (code) => reject(new Error(`pf-proxy ${args[0]} exited ${code}: ${stderr}`)))
  })
  return { child, ready, exited, stderr: () => stderr }
}

/** @param {number} port @returns {Promise<net.Socket>} */
function dialTcp(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(socket))
    socket.once('error', reject)
    cleanups.push(() => socket.destroy())
  })
}

describe('pf-proxy over AF_VSOCK', () => {
  test('ip-to-vsock -> vsock-to-ip: 2 MiB echo with half-close, then SIGTERM exits 0', LIMIT, async () => {
    const target = await echoServer()
    const vsockPort = nextVsockPort++
    const enclave = startProxy([
      'vsock-to-ip',
      '--vsock-addr',
      `any:${vsockPort}`,
      '--ip-addr',
      `127.0.0.1:${target}`,
    ])
    await enclave.ready
    const front = await freeTcpPort()
    const parent = startProxy([
      'ip-to-vsock',
      '--ip-addr',
      `127.0.0.1:${front}`,
      '--vsock-addr',
      `1:${vsockPort}`,
    ])
    await parent.ready
    const client = await dialTcp(front)
    const data = randomBytes(2 * 1024 * 1024)
    const reply = readAll(client)
    client.end(data)
    assert.equal(sha(await reply), sha(data))
    for (const proxy of [parent, enclave]) {
      proxy.child.kill('SIGTERM')
      assert.deepEqual(await proxy.exited, { code: 0, signal: null }, proxy.stderr())
    }
  })

  test('vsock-to-ip-transparent dials the address in the header read off real vsock', LIMIT, async () => {
    const target = await echoServer()
    const vsockPort = nextVsockPort++
    const proxy = startProxy([
      'vsock-to-ip-transparent',
      '--vsock-addr',
      `any:${vsockPort}`,
      '--allow',
      '127.0.0.1/32',
    ])
    await proxy.ready
    const socket = await connect(`vsock://1:${vsockPort}`, { allowHalfOpen: true })
    cleanups.push(() => socket.destroy())
    const reply = readAll(socket)
    // Header and payload in one write: the proxy must relay the bytes after the header.
    socket.end(
      Buffer.concat([encodeOriginalDestination({ host: '127.0.0.1', port: target }), Buffer.from('hello')]),
    )
    assert.equal((await reply).toString(), 'hello')
  })

  test('vsock-to-ip-transparent refuses a destination outside --allow', LIMIT, async () => {
    const target = await echoServer()
    const vsockPort = nextVsockPort++
    const proxy = startProxy([
      'vsock-to-ip-transparent',
      '--vsock-addr',
      `any:${vsockPort}`,
      '--allow',
      '10.0.0.0/8',
    ])
    await proxy.ready
    const socket = await connect(`vsock://1:${vsockPort}`, { allowHalfOpen: true })
    cleanups.push(() => socket.destroy())
    const reply = readAll(socket).catch(() => Buffer.alloc(0))
    socket.end(
      Buffer.concat([encodeOriginalDestination({ host: '127.0.0.1', port: target }), Buffer.from('x')]),
    )
    assert.equal((await reply).length, 0, 'bytes came back from a destination that is not allowed')
  })
})
