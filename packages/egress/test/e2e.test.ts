import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { type AddressInfo, createServer as createTcpServer, connect as netConnect } from 'node:net'
import { makeCa, makeLeaf, makeTempDir } from '@enclave/test-helpers'
import { connect } from '@enclave/vsock-transport'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHost, startEgressHost } from '../src/host.js'
import type { Resolve } from '../src/options.js'
import { type EgressProxy, startEgressProxy } from '../src/proxy.js'
import { encodeRequest, MessageDecoder, parseReply } from '../src/wire.js'

interface CurlResult {
  code: number
  stdout: string
  stderr: string
}

function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    // A clean environment: no proxy variables of the machine may interfere.
    execFile(
      'curl',
      ['-sS', '--max-time', '20', ...args],
      { env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
      },
    )
  })
}

const listen = (server: Server | ReturnType<typeof createTcpServer>): Promise<number> =>
  new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  )

describe('egress end to end: curl → in-enclave proxy → vsock (dev) → host half → local servers', () => {
  const temp = makeTempDir('egress-e2e-')
  const dev = { dir: temp.path }
  const lookups: string[] = []
  let httpServer: Server
  let httpsServer: Server
  let httpPort = 0
  let httpsPort = 0
  let closedPort = 0
  let caPath = ''
  let host: EgressHost
  let proxy: EgressProxy
  let proxyUrl = ''

  // Names the test resolves itself: one to the local server, one into the metadata range (rebinding).
  const resolve: Resolve = async (name, signal) => {
    lookups.push(name)
    if (name === 'api.test') return [{ address: '127.0.0.1', family: 4 }]
    if (name === 'rebind.test') return [{ address: '169.254.169.254', family: 4 }]
    if (name === 'mapped-rebind.test')
      return [
        { address: '::ffff:127.0.0.1', family: 6 },
        { address: '::ffff:169.254.169.254', family: 6 },
      ]
    if (name === 'slow.test') {
      await new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))))
    }
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' })
  }

  const policy = {
    // `host` and 127.0.0.1 are loopback: reaching the local servers needs them allowed explicitly.
    allow: [
      'host',
      '127.0.0.1',
      'api.test',
      'rebind.test',
      'mapped-rebind.test',
      'slow.test',
      'nxdomain.test',
      '**.denied.test',
      'allowed.com',
      '0.0.0.0/0',
    ],
    deny: ['blocked.test', 'x.denied.test'],
  }

  beforeAll(async () => {
    const ca = makeCa(temp.path, 'ca')
    caPath = ca.cert
    const leaf = makeLeaf(temp.path, 'server', ca, { san: 'DNS:host,DNS:api.test,IP:127.0.0.1' })
    const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
      let body = ''
      req.on('data', (c: Buffer) => {
        body += c
      })
      req.on('end', () => {
        res.setHeader('content-type', 'application/json')
        res.end(
          JSON.stringify({
            method: req.method,
            url: req.url,
            host: req.headers.host,
            auth: req.headers.authorization ?? null,
            proxyHeader: req.headers['proxy-connection'] ?? null,
            body,
          }),
        )
      })
    }
    httpServer = createHttpServer(handler)
    httpsServer = createHttpsServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key) }, handler)
    httpPort = await listen(httpServer)
    httpsPort = await listen(httpsServer)
    const closed = createTcpServer()
    closedPort = await listen(closed)
    await new Promise<void>((r) => closed.close(() => r()))
    host = await startEgressHost({ policy, dev, resolve, resolveTimeoutMs: 500, connectTimeoutMs: 5000 })
    proxy = await startEgressProxy({ policy, port: 0, dev })
    proxyUrl = `http://127.0.0.1:${proxy.port}`
  })

  afterAll(async () => {
    await proxy?.close()
    await host?.close()
    httpServer?.close()
    httpsServer?.close()
    temp.remove()
  })

  it('exports the proxy environment for the app', () => {
    expect(proxy.env.https_proxy).toBe(`${proxyUrl}/`)
    expect(proxy.env.HTTP_PROXY).toBe(`${proxyUrl}/`)
    expect(proxy.env.no_proxy).toContain('127.0.0.1')
  })

  it('relays an absolute-URI request to the host loopback by the name `host`', async () => {
    const r = await curl([
      '-x',
      proxyUrl,
      '-H',
      'Proxy-Connection: keep-alive',
      `http://host:${httpPort}/hello?x=1`,
    ])
    expect(r.stderr).toBe('')
    const seen = JSON.parse(r.stdout)
    expect(seen).toMatchObject({
      method: 'GET',
      url: '/hello?x=1',
      host: `host:${httpPort}`,
      proxyHeader: null,
    })
  })

  it('relays a POST body', async () => {
    const r = await curl([
      '-x',
      proxyUrl,
      '--data-binary',
      'payload-123',
      `http://127.0.0.1:${httpPort}/post`,
    ])
    expect(JSON.parse(r.stdout)).toMatchObject({ method: 'POST', body: 'payload-123' })
  })

  it('tunnels HTTPS with CONNECT and the TLS handshake is end to end', async () => {
    const r = await curl(['-x', proxyUrl, '--cacert', caPath, `https://host:${httpsPort}/secure`])
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toMatchObject({ url: '/secure', host: `host:${httpsPort}` })
  })

  it('resolves a name on the host once and dials the checked address', async () => {
    lookups.length = 0
    const r = await curl(['-x', proxyUrl, '--cacert', caPath, `https://api.test:${httpsPort}/named`])
    expect(JSON.parse(r.stdout)).toMatchObject({ url: '/named' })
    expect(lookups).toEqual(['api.test'])
  })

  it('answers 403 naming the deny rule for CONNECT to a denied host', async () => {
    const r = await curl([
      '-x',
      proxyUrl,
      '-w',
      '%{http_connect}',
      '-o',
      '/dev/null',
      'https://blocked.test/',
    ])
    expect(r.code).not.toBe(0)
    expect(r.stdout).toBe('403')
  })

  it('answers 403 with the rule in the body for an absolute-URI request to a denied host', async () => {
    const r = await curl(['-x', proxyUrl, '-w', '\n%{http_code}', 'http://x.denied.test/'])
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.at(-1)).toBe('403')
    expect(lines[0]).toContain('deny rule "x.denied.test"')
  })

  it('does not take userinfo for the host: http://allowed.com@evil.com/ goes to evil.com and is refused', async () => {
    const r = await curl(['-x', proxyUrl, '-w', '\n%{http_code}', 'http://allowed.com@evil.com/'])
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.at(-1)).toBe('403')
    expect(lines[0]).toContain('evil.com')
    expect(lines[0]).toContain('default deny')
  })

  it('refuses a name that resolves to the metadata address (DNS rebinding)', async () => {
    const r = await curl(['-x', proxyUrl, '-w', '\n%{http_code}', 'http://rebind.test/latest/meta-data/'])
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.at(-1)).toBe('403')
    expect(lines[0]).toContain('instance metadata')
    expect(lines[0]).toContain('169.254.169.254')
  })

  it('refuses a name when any of its addresses is protected, even IPv4-mapped', async () => {
    const r = await curl([
      '-x',
      proxyUrl,
      '-w',
      '%{http_connect}',
      '-o',
      '/dev/null',
      'https://mapped-rebind.test/',
    ])
    expect(r.stdout).toBe('403')
  })

  it('refuses the metadata address in decimal notation even under 0.0.0.0/0', async () => {
    const r = await curl(['-x', proxyUrl, '-w', '\n%{http_code}', 'http://2852039166/'])
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.at(-1)).toBe('403')
    expect(lines[0]).toContain('169.254.169.254')
  })

  it('answers 502 when the destination refuses the connection', async () => {
    const r = await curl(['-x', proxyUrl, '-w', '\n%{http_code}', `http://127.0.0.1:${closedPort}/`])
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.at(-1)).toBe('502')
    expect(lines[0]).toContain('ECONNREFUSED')
  })

  it('answers 502 when the name does not resolve', async () => {
    const r = await curl([
      '-x',
      proxyUrl,
      '-w',
      '%{http_connect}',
      '-o',
      '/dev/null',
      'https://nxdomain.test/',
    ])
    expect(r.stdout).toBe('502')
  })

  it('answers 504 when resolving times out', async () => {
    const r = await curl(['-x', proxyUrl, '-w', '\n%{http_code}', 'http://slow.test/'])
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.at(-1)).toBe('504')
    expect(lines[0]).toContain('timed out')
  })

  it('answers 501 to an Upgrade over an absolute-URI request instead of dropping it', async () => {
    const r = await curl([
      '-x',
      proxyUrl,
      '-w',
      '\n%{http_code}',
      '-H',
      'Connection: Upgrade',
      '-H',
      'Upgrade: websocket',
      `http://host:${httpPort}/ws`,
    ])
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.at(-1)).toBe('501')
    expect(lines[0]).toContain('use CONNECT')
  })

  it('answers 400 for CONNECT without a port', async () => {
    const status = await new Promise<string>((resolve, reject) => {
      const s = netConnect(proxy.port, '127.0.0.1', () =>
        s.write('CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n'),
      )
      let data = ''
      s.on('data', (c) => {
        data += c
      })
      s.on('end', () => resolve(data.split('\r\n')[0]!))
      s.on('error', reject)
    })
    expect(status).toBe('HTTP/1.1 400 Bad Request')
  })

  it('the host half enforces the policy on its own: an app speaking the vsock protocol directly is refused', async () => {
    for (const target of ['169.254.169.254', 'blocked.test', '0xa9.0xfe.0xa9.0xfe']) {
      const socket = await connect('vsock://2:17002', { dev })
      socket.write(encodeRequest({ host: target, port: 80 }))
      const decoder = new MessageDecoder()
      const reply = await new Promise<unknown>((resolve, reject) => {
        socket.on('data', (chunk: Buffer) => {
          const got = decoder.push(chunk)
          if (got) resolve(parseReply(got.value))
        })
        socket.on('error', reject)
      })
      socket.destroy()
      expect(reply).toMatchObject({ Err: { code: 'ENCLAVE_EGRESS_REFUSED', os_code: 13 } })
    }
    expect(host.stats().refused).toBeGreaterThanOrEqual(3)
  })

  it('the host half refuses what a looser in-enclave policy lets through', async () => {
    const loose = await startEgressProxy({ policy: { allow: ['**', '0.0.0.0/0'] }, port: 0, dev })
    try {
      const r = await curl([
        '-x',
        `http://127.0.0.1:${loose.port}`,
        '-w',
        '\n%{http_code}',
        'http://blocked.test/',
      ])
      const lines = r.stdout.trimEnd().split('\n')
      expect(lines.at(-1)).toBe('403')
      expect(lines[0]).toContain('deny rule "blocked.test"')
    } finally {
      await loose.close()
    }
  })

  it('answers 502 naming the host half when it is not running', async () => {
    const orphan = await startEgressProxy({ policy, port: 0, dev, hostAddress: 'vsock://2:17999' })
    try {
      const r = await curl([
        '-x',
        `http://127.0.0.1:${orphan.port}`,
        '-w',
        '\n%{http_code}',
        `http://host:${httpPort}/`,
      ])
      const lines = r.stdout.trimEnd().split('\n')
      expect(lines.at(-1)).toBe('502')
      expect(lines[0]).toContain('egress host proxy')
    } finally {
      await orphan.close()
    }
  })
})
