import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { join } from 'node:path'
import {
  BridgeHttpAgent,
  BridgeHttpsAgent,
  createBridgeDispatcher,
  DialFailedError,
  serveHttp,
} from '@enclave/bridge-enclave'
import { holdDeadPort, makeTempDir } from '@enclave/test-helpers'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import type { BridgeHost } from '../src/index.js'
import { bridged as bridgedHost, devWorld } from './helpers.js'

let world: ReturnType<typeof devWorld>
let host: BridgeHost | undefined
const cleanups: (() => unknown)[] = []

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
  await host?.close({ drainTimeoutMs: 0 })
  host = undefined
  world?.remove()
})

function listenLocal(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
    cleanups.push(() => {
      server.closeAllConnections()
      return new Promise((r) => server.close(r))
    })
  })
}

async function bridged(options: { proxyProtocol?: boolean } = {}): Promise<number> {
  world = devWorld()
  const b = await bridgedHost(world, options)
  host = b.host
  cleanups.push(() => b.session.close())
  return b.tcpPort
}

function get(url: string, options: http.RequestOptions = {}): Promise<{ status: number; body: string }> {
  const mod = url.startsWith('https') ? https : http
  return new Promise((resolve, reject) => {
    mod
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

describe('HTTP helpers', () => {
  it('serveHttp answers through the server tunnel', async () => {
    const tcpPort = await bridged()
    const app = http.createServer((req, res) => res.end(`hello ${req.url}`))
    const served = await serveHttp(app, { port: 5001, dev: world.enclaveDev })
    cleanups.push(() => served.close())
    const res = await get(`http://127.0.0.1:${tcpPort}/x`, { agent: false })
    expect(res).toEqual({ status: 200, body: 'hello /x' })
  })

  it('with the PROXY protocol on both ends, the enclave sees the real TCP client', async () => {
    const tcpPort = await bridged({ proxyProtocol: true })
    const app = http.createServer((req, res) =>
      res.end(`${req.socket.remoteAddress} ${req.socket.remotePort}`),
    )
    const served = await serveHttp(app, { port: 5001, dev: world.enclaveDev, proxyProtocol: true })
    cleanups.push(() => served.close())
    const req = http.get(`http://127.0.0.1:${tcpPort}/`, { agent: false })
    const [socket] = (await once(req, 'socket')) as [import('node:net').Socket]
    await once(socket, 'connect')
    const clientPort = socket.localPort
    const [res] = (await once(req, 'response')) as [http.IncomingMessage]
    let body = ''
    for await (const chunk of res) body += chunk
    expect(body).toBe(`127.0.0.1 ${clientPort}`)
  })

  it('serveHttp close() does not wait on idle keep-alive connections', async () => {
    const tcpPort = await bridged()
    const app = http.createServer((_req, res) => res.end('ok'))
    app.keepAliveTimeout = 120_000
    const served = await serveHttp(app, { port: 5001, dev: world.enclaveDev })
    const agent = new http.Agent({ keepAlive: true })
    cleanups.push(() => agent.destroy())
    expect((await get(`http://127.0.0.1:${tcpPort}/`, { agent })).body).toBe('ok')
    // Without closing idle connections this would wait for the 120 s keep-alive (or the grace).
    await served.close({ graceMs: 120_000 })
  })

  it('BridgeHttpAgent and the undici dispatcher reach a local server through the client tunnel', async () => {
    await bridged()
    const port = await listenLocal(http.createServer((req, res) => res.end(`upstream ${req.url}`)))
    const agent = new BridgeHttpAgent({ port: 5002, dev: world.enclaveDev })
    cleanups.push(() => agent.destroy())
    expect(await get(`http://127.0.0.1:${port}/a`, { agent })).toEqual({ status: 200, body: 'upstream /a' })
    const dispatcher = createBridgeDispatcher({ port: 5002, dev: world.enclaveDev })
    cleanups.push(() => dispatcher.close())
    const res = await request(`http://127.0.0.1:${port}/b`, { dispatcher })
    expect(await res.body.text()).toBe('upstream /b')
    const dead = await holdDeadPort()
    cleanups.push(dead.release)
    const err = await request(`http://127.0.0.1:${dead.port}/`, { dispatcher }).catch((e) => e)
    expect(err).toBeInstanceOf(DialFailedError)
    expect(err.reason).toBe('ECONNREFUSED')
  })

  it('HTTPS runs TLS inside the enclave: the host relays ciphertext only', async () => {
    await bridged()
    const tmp = makeTempDir('bridge-tls-')
    cleanups.push(tmp.remove)
    const key = join(tmp.path, 'key.pem')
    const cert = join(tmp.path, 'cert.pem')
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
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    )
    const ca = readFileSync(cert)
    const port = await listenLocal(
      https.createServer({ key: readFileSync(key), cert: ca }, (req, res) => res.end(`secure ${req.url}`)),
    )
    const agent = new BridgeHttpsAgent({ port: 5002, dev: world.enclaveDev }, { ca })
    cleanups.push(() => agent.destroy())
    expect(await get(`https://localhost:${port}/s`, { agent })).toEqual({ status: 200, body: 'secure /s' })
    const dispatcher = createBridgeDispatcher({ port: 5002, dev: world.enclaveDev }, { tlsOptions: { ca } })
    cleanups.push(() => dispatcher.close())
    const res = await request(`https://localhost:${port}/u`, { dispatcher })
    expect(await res.body.text()).toBe('secure /u')
  })
})
