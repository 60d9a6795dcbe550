// @ts-check
// Guest suite: the BUILT enclave bridge (host and enclave halves, DIMO-compatible) over real
// AF_VSOCK. The "enclave" dials the host at CID 1 (the loopback) instead of 3, and declares CID 1
// as its own; everything else is what a Nitro parent and enclave do: handshake with the forwarded
// environment, a server tunnel (TCP on the host -> vsock -> HTTP in the enclave), a client tunnel
// (HTTP from the enclave -> vsock -> TCP on the host side).
import assert from 'node:assert/strict'
import http from 'node:http'
import { PassThrough } from 'node:stream'
import { afterEach, describe, test } from 'node:test'

import { packageDist } from './_helpers.mjs'

const { createBridgeHost } = await import(packageDist('bridge-host'))
const { BridgeHttpAgent, connectBridge, serveHttp } = await import(packageDist('bridge-enclave'))

const LIMIT = { timeout: 60_000 }
const LOOPBACK = 1

/** @type {Array<() => unknown>} */
const cleanups = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** @param {http.Server} server @returns {Promise<number>} */
function listenLocal(server) {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve(/** @type {import('node:net').AddressInfo} */ (server.address()).port),
    )
    cleanups.push(() => {
      server.closeAllConnections()
      return new Promise((r) => server.close(r))
    })
  })
}

async function freePort() {
  const server = http.createServer()
  const port = await new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(/** @type {import('node:net').AddressInfo} */ (server.address()).port),
    ),
  )
  await new Promise((r) => server.close(r))
  return /** @type {number} */ (port)
}

/**
 * @param {string} url @param {http.RequestOptions} [options]
 * @returns {Promise<{ status: number, body: string }>}
 */
function get(url, options = {}) {
  return new Promise((resolve, reject) => {
    http
      .get(url, options, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d) => {
          body += d
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      .once('error', reject)
  })
}

describe('enclave bridge over AF_VSOCK', () => {
  test('handshake with the forwarded environment, then server and client tunnels', LIMIT, async () => {
    // Enclave log lines would go to stdout, mixed with this suite's output.
    const logOutput = new PassThrough().resume()
    const host = createBridgeHost({
      dev: false,
      env: { APP_GREETING: 'hello from the parent', SECRET: 'not forwarded' },
      forwardEnv: ['APP_*'],
      logOutput,
    })
    await host.start()
    cleanups.push(() => host.close({ drainTimeoutMs: 0 }))

    const handshake = await connectBridge({ hostCid: LOOPBACK, dev: false, maxAttempts: 20 })
    assert.deepEqual(handshake.env, { APP_GREETING: 'hello from the parent' })

    const tcpPort = await freePort()
    const session = await handshake.finish(
      {
        appName: 'vm-test',
        watchdog: { enclaveId: crypto.randomUUID(), intervalMs: 60_000 },
        logger: { level: '' },
        servers: [{ enclaveCid: LOOPBACK, enclaveListenPort: 5001, bridgeTcpPort: tcpPort }],
        clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }],
      },
      { watchdog: false },
    )
    cleanups.push(() => session.close())

    // Server tunnel: a TCP client on the host reaches HTTP served on vsock in the enclave.
    const app = http.createServer((req, res) => res.end(`enclave says ${req.url}`))
    const served = await serveHttp(app, { port: 5001, dev: false })
    cleanups.push(() => served.close())
    assert.deepEqual(await get(`http://127.0.0.1:${tcpPort}/inbound`, { agent: false }), {
      status: 200,
      body: 'enclave says /inbound',
    })

    // Client tunnel: the enclave reaches a TCP server through the host.
    const upstream = await listenLocal(http.createServer((req, res) => res.end(`upstream saw ${req.url}`)))
    const agent = new BridgeHttpAgent({ port: 5002, hostCid: LOOPBACK, dev: false })
    cleanups.push(() => agent.destroy())
    assert.deepEqual(await get(`http://127.0.0.1:${upstream}/outbound`, { agent }), {
      status: 200,
      body: 'upstream saw /outbound',
    })
  })
})
