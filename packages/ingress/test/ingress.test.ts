import { execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import {
  type AddressInfo,
  createServer as createNetServer,
  connect as netConnect,
  type Server,
  type Socket,
} from 'node:net'
import { Duplex } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { makeCa, makeLeaf, makeTempDir, type Pem } from '@enclave/test-helpers'
import type { Tunnel } from '@enclave/tunnel'
import { connect as vsockConnect } from '@enclave/vsock-transport'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type IngressEnclave, startIngressEnclave } from '../src/enclave.js'
import { TlsFilesError } from '../src/errors.js'
import { startIngressHost } from '../src/host.js'
import type { IngressEnclaveOptions } from '../src/options.js'
import { encodeProxyV2, PP2_TYPE_SSL, ProxyV2Decoder } from '../src/proxy-v2.js'

const CID = 16

function run(
  cmd: string,
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
      },
    )
    if (input !== undefined) child.stdin?.end(input)
  })
}

/** openssl s_client: sends `input` once connected, keeps stdin open briefly so the reply arrives. */
function sClient(args: string[], input: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', ...args], { env: { PATH: process.env.PATH ?? '' } })
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c
    })
    child.stderr.on('data', (c: Buffer) => {
      out += c
    })
    child.stdin.write(input)
    const timer = setTimeout(() => child.stdin.end(), 1500)
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      clearTimeout(kill)
      resolve({ code: code ?? 1, out })
    })
  })
}

const listenOn = (server: Server | HttpServer): Promise<number> =>
  new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  )

async function freePort(): Promise<number> {
  const s = createNetServer()
  const port = await listenOn(s)
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

describe('ingress end to end: client → host TCP → vsock (dev) → enclave half → app', () => {
  const temp = makeTempDir('ingress-e2e-')
  let ca: Pem
  let server: Pem
  let client: Pem
  let strangerCa: Pem
  let stranger: Pem
  let app: HttpServer
  let appPort = 0
  let rawApp: Server
  let rawAppPort = 0
  const rawSeen: { header: ReturnType<ProxyV2Decoder['push']>; payload: string }[] = []
  const stops: (() => Promise<void>)[] = []

  beforeAll(async () => {
    ca = makeCa(temp.path, 'ca')
    server = makeLeaf(temp.path, 'server', ca, { san: 'DNS:localhost,IP:127.0.0.1' })
    client = makeLeaf(temp.path, 'client', ca, { client: true })
    strangerCa = makeCa(temp.path, 'stranger-ca')
    stranger = makeLeaf(temp.path, 'stranger', strangerCa, { client: true })
    app = createHttpServer((req, res) => res.end(`app saw ${req.method} ${req.url}`))
    appPort = await listenOn(app)
    // An app that reads the PROXY v2 header and reports it back.
    rawApp = createNetServer((socket) => {
      const decoder = new ProxyV2Decoder()
      socket.on('data', function onData(chunk: Buffer) {
        const got = decoder.push(chunk)
        if (!got) return
        socket.off('data', onData)
        let payload = got.rest.toString()
        const finish = () => {
          rawSeen.push({ header: got, payload })
          socket.end(
            JSON.stringify({
              source: got.value.source,
              tlvs: got.value.tlvs.map((t) => ({
                type: t.type,
                text: t.value.subarray(5).toString('latin1'),
                verify: t.value.readUInt32BE(1),
              })),
              payload,
            }),
          )
        }
        if (payload.includes('\n')) finish()
        else
          socket.on('data', (more: Buffer) => {
            payload += more
            if (payload.includes('\n')) finish()
          })
      })
    })
    rawAppPort = await listenOn(rawApp)
  })

  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop()
  })

  afterAll(async () => {
    app?.close()
    rawApp?.close()
    temp.remove()
  })

  async function chain(
    enclave: Omit<IngressEnclaveOptions, 'listenPort'>,
    hostProxyProtocol = false,
  ): Promise<{ port: number; enclave: IngressEnclave; host: Tunnel }> {
    const port = await freePort()
    const half = await startIngressEnclave({
      listenPort: port,
      appPort,
      ...enclave,
      dev: { dir: temp.path, cid: CID },
    })
    stops.push(() => half.close())
    const host = await startIngressHost({
      listenPort: port,
      enclaveCid: CID,
      listenHost: '127.0.0.1',
      proxyProtocol: hostProxyProtocol,
      dev: { dir: temp.path },
    })
    stops.push(() => host.close())
    return { port, enclave: half, host }
  }

  const tlsFiles = (mtls: boolean) => ({
    certFile: server.cert,
    keyFile: server.key,
    ...(mtls ? { clientCaFile: ca.cert } : {}),
  })

  it('relays plain HTTP unchanged (curl)', async () => {
    const { port, enclave } = await chain({})
    const r = await run('curl', ['-sS', '--max-time', '20', `http://127.0.0.1:${port}/plain`])
    expect(r.stdout).toBe('app saw GET /plain')
    expect(enclave.stats().total).toBe(1)
  })

  it('terminates TLS with the manifest cert_file/key_file (curl and openssl s_client)', async () => {
    const { port } = await chain({ tls: tlsFiles(false) })
    const r = await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '--cacert',
      ca.cert,
      `https://127.0.0.1:${port}/tls`,
    ])
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('app saw GET /tls')
    const s = await sClient(
      ['-connect', `127.0.0.1:${port}`, '-CAfile', ca.cert, '-verify_return_error', '-ign_eof'],
      'GET /s-client HTTP/1.0\r\n\r\n',
    )
    expect(s.out).toContain('Verify return code: 0 (ok)')
    expect(s.out).toContain('app saw GET /s-client')
  })

  it('mTLS: a client certificate from the CA is accepted (curl and openssl s_client)', async () => {
    const { port } = await chain({ tls: tlsFiles(true) })
    const r = await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '--cacert',
      ca.cert,
      '--cert',
      client.cert,
      '--key',
      client.key,
      `https://127.0.0.1:${port}/mtls`,
    ])
    expect(r.stdout).toBe('app saw GET /mtls')
    const s = await sClient(
      [
        '-connect',
        `127.0.0.1:${port}`,
        '-CAfile',
        ca.cert,
        '-cert',
        client.cert,
        '-key',
        client.key,
        '-ign_eof',
      ],
      'GET /mtls-s HTTP/1.0\r\n\r\n',
    )
    expect(s.out).toContain('app saw GET /mtls-s')
  })

  it('mTLS: no client certificate is refused and the app never sees the request', async () => {
    const { port, enclave } = await chain({ tls: tlsFiles(true) })
    const r = await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '--cacert',
      ca.cert,
      `https://127.0.0.1:${port}/none`,
    ])
    expect(r.code).not.toBe(0)
    expect(r.stdout).not.toContain('app saw')
    const s = await sClient(
      ['-connect', `127.0.0.1:${port}`, '-CAfile', ca.cert, '-ign_eof'],
      'GET /none-s HTTP/1.0\r\n\r\n',
    )
    expect(s.out).not.toContain('app saw')
    expect(s.out).toMatch(/alert|certificate required|errno|error/i)
    expect(enclave.stats().handshakeFailures).toBeGreaterThanOrEqual(1)
  })

  it('mTLS: a client certificate from another CA is refused (curl and openssl s_client)', async () => {
    const { port } = await chain({ tls: tlsFiles(true) })
    const r = await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '--cacert',
      ca.cert,
      '--cert',
      stranger.cert,
      '--key',
      stranger.key,
      `https://127.0.0.1:${port}/stranger`,
    ])
    expect(r.code).not.toBe(0)
    expect(r.stdout).not.toContain('app saw')
    const s = await sClient(
      [
        '-connect',
        `127.0.0.1:${port}`,
        '-CAfile',
        ca.cert,
        '-cert',
        stranger.cert,
        '-key',
        stranger.key,
        '-ign_eof',
      ],
      'GET /stranger-s HTTP/1.0\r\n\r\n',
    )
    expect(s.out).not.toContain('app saw')
    expect(s.out).toMatch(/alert|unknown ca|error/i)
  })

  it('PROXY v2: the app learns the real client address', async () => {
    const { port } = await chain({ appPort: rawAppPort, proxyProtocol: true }, true)
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = netConnect(port, '127.0.0.1', () => socket.write('hello\n'))
      let data = ''
      socket.on('data', (c) => {
        data += c
      })
      socket.on('end', () => resolve(data))
      socket.on('error', reject)
      socket.once('connect', () => {
        ;(socket as Socket & { seenPort?: number }).seenPort = socket.localPort
      })
    })
    const parsed = JSON.parse(reply)
    expect(parsed.source.address).toBe('127.0.0.1')
    expect(parsed.payload).toBe('hello\n')
    expect(parsed.tlvs).toEqual([])
  })

  it('PROXY v2 with mTLS: the app gets the client address, the TLS version and the verified client CN', async () => {
    const { port } = await chain({ appPort: rawAppPort, proxyProtocol: true, tls: tlsFiles(true) }, true)
    const { reply, localPort } = await new Promise<{ reply: string; localPort: number }>(
      (resolve, reject) => {
        const socket = tlsConnect(
          {
            host: '127.0.0.1',
            port,
            ca: readFileSync(ca.cert),
            cert: readFileSync(client.cert),
            key: readFileSync(client.key),
          },
          () => socket.write('over tls\n'),
        )
        let data = ''
        socket.on('data', (c) => {
          data += c
        })
        socket.on('end', () => resolve({ reply: data, localPort: socket.localPort ?? 0 }))
        socket.on('error', reject)
      },
    )
    const parsed = JSON.parse(reply)
    expect(parsed.source).toEqual({ address: '127.0.0.1', port: localPort })
    expect(parsed.payload).toBe('over tls\n')
    expect(parsed.tlvs[0].type).toBe(PP2_TYPE_SSL)
    expect(parsed.tlvs[0].verify).toBe(0)
    expect(parsed.tlvs[0].text).toContain('TLSv1.3')
    expect(parsed.tlvs[0].text).toContain('client')
  })

  it('PROXY v2 header and the TLS ClientHello in one packet: no byte is lost', async () => {
    const port = await freePort()
    const half = await startIngressEnclave({
      listenPort: port,
      appPort: rawAppPort,
      proxyProtocol: true,
      tls: tlsFiles(false),
      dev: { dir: temp.path, cid: CID },
    })
    stops.push(() => half.close())
    const raw = await vsockConnect(`vsock://${CID}:${port}`, { dev: { dir: temp.path } })
    const header = encodeProxyV2({
      source: { address: '203.0.113.9', port: 4242 },
      destination: { address: '10.0.0.1', port },
    })
    // A test-only shim so the first TLS write leaves in the same write() as the header.
    let first = true
    const shim = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        raw.write(first ? Buffer.concat([header, chunk]) : chunk, cb)
        first = false
      },
      final(cb) {
        raw.end()
        cb()
      },
    })
    raw.on('data', (c: Buffer) => shim.push(c))
    raw.on('end', () => shim.push(null))
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ socket: shim, servername: 'localhost', ca: readFileSync(ca.cert) }, () =>
        socket.write('coalesced\n'),
      )
      let data = ''
      socket.on('data', (c) => {
        data += c
      })
      socket.on('end', () => resolve(data))
      socket.on('error', reject)
    })
    raw.destroy()
    expect(JSON.parse(reply)).toMatchObject({
      source: { address: '203.0.113.9', port: 4242 },
      payload: 'coalesced\n',
    })
  })

  it('refuses a connection whose PROXY header is malformed, and keeps serving', async () => {
    const { port, enclave } = await chain({ appPort: rawAppPort, proxyProtocol: true }, false)
    // The host half here sends no header: the client's own bytes are not a header.
    const closed = await new Promise<string>((resolve) => {
      const socket = netConnect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\n\r\n'))
      let data = ''
      socket.on('data', (c) => {
        data += c
      })
      socket.on('close', () => resolve(data))
      socket.on('error', () => {})
    })
    expect(closed).toBe('')
    expect(enclave.stats().handshakeFailures).toBe(1)
  })

  it('drops a peer that never finishes its PROXY header or TLS handshake', async () => {
    const port = await freePort()
    const half = await startIngressEnclave({
      listenPort: port,
      appPort: rawAppPort,
      proxyProtocol: true,
      tls: tlsFiles(false),
      handshakeTimeoutMs: 300,
      dev: { dir: temp.path, cid: CID },
    })
    stops.push(() => half.close())
    for (const partial of [encodeProxyV2({}).subarray(0, 10), encodeProxyV2({})]) {
      const socket = await vsockConnect(`vsock://${CID}:${port}`, { dev: { dir: temp.path } })
      socket.write(partial)
      await new Promise<void>((resolve) => {
        socket.on('error', () => {})
        socket.on('close', () => resolve())
      })
    }
    expect(half.stats().total).toBe(0)
  })

  it('closes connections beyond maxConnections on arrival', async () => {
    const port = await freePort()
    const half = await startIngressEnclave({
      listenPort: port,
      appPort,
      maxConnections: 1,
      dev: { dir: temp.path, cid: CID },
    })
    stops.push(() => half.close())
    const first = await vsockConnect(`vsock://${CID}:${port}`, { dev: { dir: temp.path } })
    first.write('GET /held HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((r) => first.once('data', r))
    const second = await vsockConnect(`vsock://${CID}:${port}`, { dev: { dir: temp.path } })
    const got = await new Promise<string>((resolve) => {
      let d = ''
      second.on('data', (c) => {
        d += c
      })
      second.on('error', () => {})
      second.on('close', () => resolve(d))
    })
    first.destroy()
    expect(got).toBe('')
  })

  it('names the missing TLS file in a typed error', async () => {
    await expect(
      startIngressEnclave({
        listenPort: 9,
        tls: { certFile: `${temp.path}/nope.pem`, keyFile: server.key },
        dev: { dir: temp.path, cid: CID },
      }),
    ).rejects.toThrow(TlsFilesError)
    await expect(
      startIngressEnclave({
        listenPort: 9,
        tls: { certFile: `${temp.path}/nope.pem`, keyFile: server.key },
        dev: { dir: temp.path, cid: CID },
      }),
    ).rejects.toThrow(/nope\.pem.*ENOENT/)
  })
})
