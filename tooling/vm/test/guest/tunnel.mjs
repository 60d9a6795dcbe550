// @ts-check
// Guest suite: the BUILT @enclave/tunnel carrying TCP over real AF_VSOCK, the way a parent and an
// enclave use it: client -> TCP -> tunnel "parent" -> vsock (CID 1) -> tunnel "enclave" -> TCP ->
// server, all inside the guest. Checks data, half-close across both vsock hops, stats, and what a
// refused vsock target does to the inbound connection.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { afterEach, describe, test } from 'node:test'

import { packageDist, readAll, sha, waitFor } from './_helpers.mjs'

const { forward } = await import(packageDist('tunnel'))
const { listen, serverAddressOf } = await import(packageDist('vsock-transport'))

const LIMIT = { timeout: 30_000 }

/** @type {Array<() => unknown>} */
const cleanups = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/**
 * A TCP server on 127.0.0.1 that hands each connection to `onConnection`.
 * @param {(socket: net.Socket) => void} onConnection
 * @returns {Promise<number>} its port
 */
async function tcpServer(onConnection) {
  const server = net.createServer({ allowHalfOpen: true }, onConnection)
  /** @type {Set<net.Socket>} */
  const sockets = new Set()
  server.on('connection', (s) => sockets.add(s))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  cleanups.push(() => {
    for (const s of sockets) s.destroy()
    return new Promise((resolve) => server.close(resolve))
  })
  return /** @type {net.AddressInfo} */ (server.address()).port
}

/** @param {object} options */
async function tunnel(options) {
  const t = await forward({ drainTimeoutMs: 1000, ...options })
  cleanups.push(() => t.close({ drainTimeoutMs: 100 }))
  return t
}

/**
 * The chain in front of a TCP server: returns the TCP port a client dials and both tunnels.
 * @param {number} serverPort
 */
async function chain(serverPort) {
  // The vsock listener is made here so its port is known whatever tunnel.address says.
  const server = await listen('vsock://any:0', { allowHalfOpen: true })
  cleanups.push(() => new Promise((resolve) => server.close(resolve)))
  const vsockPort = serverAddressOf(server).port
  const enclave = await tunnel({ from: server, to: `tcp://127.0.0.1:${serverPort}` })
  const parent = await tunnel({ from: 'tcp://127.0.0.1:0', to: `vsock://1:${vsockPort}` })
  const tcpPort = Number(/:(\d+)$/.exec(parent.address)?.[1])
  return { enclave, parent, tcpPort }
}

/** @param {number} port @returns {Promise<net.Socket>} */
function dialTcp(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(socket))
    socket.once('error', reject)
    cleanups.push(() => socket.destroy())
  })
}

describe('tunnel over AF_VSOCK', () => {
  test('a vsock listener on port 0 reports the port the kernel chose', LIMIT, async () => {
    const enclave = await tunnel({ from: 'vsock://any:0', to: 'tcp://127.0.0.1:9' })
    console.log(`tunnel.address = ${enclave.address}`)
    assert.match(
      enclave.address,
      /^vsock:\/\/[^:]+:[1-9]\d*$/,
      `address without its port: ${enclave.address}`,
    )
  })

  test('4 MiB echo through TCP -> vsock -> TCP arrives intact', LIMIT, async () => {
    const serverPort = await tcpServer((socket) => socket.pipe(socket))
    const { tcpPort } = await chain(serverPort)
    const client = await dialTcp(tcpPort)
    const data = randomBytes(4 * 1024 * 1024)
    const reply = readAll(client)
    client.end(data)
    assert.equal(sha(await reply), sha(data))
  })

  test('half-close crosses both vsock hops: the server answers after the client ended', LIMIT, async () => {
    const serverPort = await tcpServer(async (socket) => {
      const request = await readAll(socket)
      socket.end(`${request.length} bytes, then end`)
    })
    const { tcpPort } = await chain(serverPort)
    const client = await dialTcp(tcpPort)
    const reply = readAll(client)
    client.end(Buffer.alloc(300_000, 7))
    assert.equal((await reply).toString(), '300000 bytes, then end')
  })

  test('stats count every byte and go back to no active connection', LIMIT, async () => {
    const serverPort = await tcpServer((socket) => socket.pipe(socket))
    const { enclave, parent, tcpPort } = await chain(serverPort)
    for (let i = 0; i < 5; i++) {
      const client = await dialTcp(tcpPort)
      const reply = readAll(client)
      client.end(Buffer.alloc(10_000, i))
      assert.equal((await reply).length, 10_000)
    }
    await waitFor(() => parent.stats().active === 0 && enclave.stats().active === 0, 'active to reach 0')
    for (const t of [parent, enclave]) {
      const stats = t.stats()
      assert.equal(stats.total, 5)
      assert.equal(stats.errors, 0)
      assert.equal(stats.bytesIn, 50_000)
      assert.equal(stats.bytesOut, 50_000)
    }
  })

  test('a vsock target nobody listens on: the client is closed and the error is typed', LIMIT, async () => {
    const probe = await listen('vsock://any:0')
    const closedPort = serverAddressOf(probe).port
    await new Promise((resolve) => probe.close(resolve))
    const parent = await tunnel({ from: 'tcp://127.0.0.1:0', to: `vsock://1:${closedPort}` })
    /** @type {Promise<any>} */
    const summary = new Promise((resolve) => parent.once('connectionClosed', resolve))
    const client = await dialTcp(Number(/:(\d+)$/.exec(parent.address)?.[1]))
    client.on('error', () => {})
    client.resume()
    // The tunnel destroys the inbound socket: a half-open client sees the end of the stream.
    await new Promise((resolve) => client.once('end', resolve))
    const { error } = await summary
    console.log(`refused target: ${error?.code}: ${error?.message}`)
    assert.equal(error?.code, 'ENCLAVE_TUNNEL_CONNECT_FAILED')
    assert.equal(parent.stats().errors, 1)
  })
})
