import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { createServer as createNetServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDevNsm, parseAttestationDocument } from '@enclave/attestation'
import { describeEif, writeEif } from '@enclave/eif'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
// The KMS package's own test endpoint (real SigV4 checks, Recipient attestation, CMS envelopes).
import { startFakeKms } from '../../../packages/kms/test/fake-kms.js'
import { makeCa, makeLeaf, type Pem } from './fixtures/certs.js'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const ODYN = fileURLToPath(new URL('../dist/odyn.js', import.meta.url))
const APP = fileURLToPath(new URL('./fixtures/net-app.mjs', import.meta.url))
const FAKE_NITRO = fileURLToPath(new URL('./fixtures/nitro-cli.mjs', import.meta.url))

const temp = makeTempDir('enclaver-net-')
const dir = temp.path
const eif = join(dir, 'app.eif')
let pcr0 = ''
const targets: Server[] = []
let allowedPort = 0
let deniedPort = 0
let deniedHits = 0
let ca: Pem
let server: Pem
let client: Pem
let stranger: Pem

/** A port free on every given loopback address right now (bound with port 0, then released). */
async function freePort(hosts: readonly string[] = ['127.0.0.1']): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = createNetServer()
    await new Promise<void>((r) => first.listen(0, hosts[0], r))
    const port = (first.address() as { port: number }).port
    const others = hosts.slice(1).map(() => createNetServer())
    const ok = await Promise.all(
      others.map(
        (s, i) =>
          new Promise<boolean>((r) => {
            s.once('error', () => r(false))
            s.listen(port, hosts[i + 1], () => r(true))
          }),
      ),
    )
    for (const s of [first, ...others]) s.close()
    if (ok.every(Boolean)) return port
  }
  throw new Error(`no port free on ${hosts.join(', ')}`)
}

async function target(onRequest: () => string): Promise<number> {
  const server = createServer((_req, res) => res.end(onRequest()))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  targets.push(server)
  return (server.address() as { port: number }).port
}

beforeAll(async () => {
  chmodSync(dir, 0o755) // the app runs as uid 1000 when the tests run as root
  copyFileSync(APP, join(dir, 'net-app.mjs'))
  await writeEif(eif, {
    kernel: Buffer.from('KERNEL'.repeat(64)),
    cmdline: 'console=ttyS0',
    ramdisks: [Buffer.from('bootstrap'.repeat(32)), Buffer.from('networking'.repeat(32))],
  })
  pcr0 = (await describeEif(eif)).Measurements.PCR0
  ca = makeCa(dir, 'ca')
  server = makeLeaf(dir, 'server', ca, { san: 'DNS:localhost,IP:127.0.0.2' })
  client = makeLeaf(dir, 'client', ca, { client: true })
  // A client certificate from a CA the enclave does not trust.
  stranger = makeLeaf(dir, 'stranger', makeCa(dir, 'other-ca'), { client: true })
  allowedPort = await target(() => 'allowed-target')
  deniedPort = await target(() => {
    deniedHits++
    return 'denied-target'
  })
})
afterAll(async () => {
  for (const s of targets) s.close()
  temp.remove()
})

const spawned: ChildProcess[] = []
afterEach(async () => {
  for (const child of spawned.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue
    // SIGTERM: enclaver terminates odyn, which stops the app; then make sure.
    child.kill('SIGTERM')
    await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 20_000))])
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
})

/** `enclaver run --simulate` of the test app with `manifest`, tracked for cleanup. */
function simulate(manifest: string, env: NodeJS.ProcessEnv) {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'run',
      '--simulate',
      '--eif',
      eif,
      '--manifest',
      manifest,
      '--odyn',
      ODYN,
      '--',
      process.execPath,
      join(dir, 'net-app.mjs'),
    ],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  spawned.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString()
  })
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString()
  })
  return { child, out: () => stdout, err: () => stderr, exited: once(child, 'exit') }
}

async function answers(url: string, err: () => string): Promise<void> {
  await waitFor(
    async () => {
      try {
        return (await fetch(url)).ok
      } catch {
        return false
      }
    },
    { what: `${url} to answer (stderr: ${err()})`, timeoutMs: 40_000 },
  )
}

describe('enclaver run --simulate with egress, ingress and the enclave API', () => {
  it('answers through ingress (plain and mTLS), allows and refuses egress by policy, attests, returns the exit code', async () => {
    const appPort = await freePort(['127.0.0.1', '127.0.0.2'])
    const proxyPort = await freePort()
    const apiPort = await freePort()
    const tlsPort = await freePort(['127.0.0.1', '127.0.0.2'])
    const manifest = join(dir, 'enclaver.yaml')
    writeFileSync(
      manifest,
      [
        'version: v1',
        'name: net-app',
        'target: net-app:latest',
        'sources:',
        '  app: net-app:latest',
        'ingress:',
        `  - listen_port: ${appPort}`,
        `  - listen_port: ${tlsPort}`,
        '    tls:',
        `      cert_file: ${server.cert}`,
        `      key_file: ${server.key}`,
        `      client_ca_file: ${ca.cert}`,
        'egress:',
        `  proxy_port: ${proxyPort}`,
        '  allow:',
        '    - host',
        'api:',
        `  listen_port: ${apiPort}`,
        '',
      ].join('\n'),
    )
    const { out, err, exited } = simulate(manifest, {
      APP_PORT: String(appPort),
      API_PORT: String(apiPort),
      TLS_APP_PORT: String(tlsPort),
    })
    // The host's ingress listener (127.0.0.2 under --simulate) → vsock → odyn → the app.
    const base = `http://127.0.0.2:${appPort}`
    await waitFor(
      async () => {
        try {
          return (await (await fetch(`${base}/hello`)).text()) === 'hello through ingress\n'
        } catch {
          return false
        }
      },
      { what: `the app to answer through ingress (stderr: ${err()})`, timeoutMs: 40_000 },
    )
    await waitFor(() => out().includes('GET /hello'), { what: "the app's log line on the host" })

    const fetchVia = async (url: string) =>
      (await (await fetch(`${base}/fetch?url=${encodeURIComponent(url)}`)).json()) as {
        status: number
        body: string
      }
    // `host` is allowed explicitly: the host half dials its own loopback.
    expect(await fetchVia(`http://host:${allowedPort}/`)).toEqual({ status: 200, body: 'allowed-target' })
    // 127.0.0.1 as an IP literal is not allowed (and protected): 403, the target never sees it.
    const denied = await fetchVia(`http://127.0.0.1:${deniedPort}/`)
    expect(denied.status).toBe(403)
    expect(deniedHits).toBe(0)

    // The enclave API's document carries the EIF's PCR0 (dev NSM) and our nonce.
    const res = await fetch(`${base}/attestation?nonce=c0ffee`)
    expect(res.status).toBe(200)
    const doc = parseAttestationDocument(Buffer.from(await res.text(), 'base64'))
    expect(Buffer.from(doc.document.pcrs.get(0)!).toString('hex')).toBe(pcr0)
    expect(Buffer.from(doc.document.nonce!).toString('hex')).toBe('c0ffee')

    // HTTPS ingress with mTLS, terminated inside the enclave with the manifest's files.
    const tlsGet = (who: Pem | undefined) =>
      new Promise<string>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.2',
            port: tlsPort,
            path: '/hello',
            servername: 'localhost',
            ca: readFileSync(ca.cert),
            ...(who ? { cert: readFileSync(who.cert), key: readFileSync(who.key) } : {}),
          },
          (res) => {
            let body = ''
            res.on('data', (c: Buffer) => {
              body += c.toString()
            })
            res.on('end', () => resolve(body))
            res.on('error', reject)
          },
        )
        req.setTimeout(20_000, () => req.destroy(new Error('timed out')))
        req.on('error', reject)
        req.end()
      })
    expect(await tlsGet(client)).toBe('hello through ingress\n')
    await expect(tlsGet(undefined)).rejects.toThrow()
    await expect(tlsGet(stranger)).rejects.toThrow()

    expect(await (await fetch(`${base}/exit?code=42`)).text()).toBe('bye\n')
    const [code] = await exited
    expect(code, err()).toBe(42)
  })
  it('runs the KMS proxy: a GenerateDataKey/Decrypt round trip with a Recipient bound to the EIF PCR0', async () => {
    // The dev NSM odyn makes lives in $XDG_CONFIG_HOME/enclave/dev-nsm: make it first, to pin its root.
    const xdg = join(dir, 'xdg')
    const nsm = await createDevNsm({ dir: join(xdg, 'enclave', 'dev-nsm') })
    await nsm.close()
    const creds = { accessKeyId: 'AKIAHOSTHANDEDOVER', secretAccessKey: 'handed-over-secret' }
    // A local KMS-compatible HTTPS endpoint that verifies Recipient documents (PCR0 must be the EIF's).
    const kms = await startFakeKms({ root: nsm.rootCertificatePem, credentials: creds, pcrs: { 0: pcr0 } })
    try {
      const caFile = join(dir, 'fake-kms-ca.pem')
      writeFileSync(caFile, kms.caPem)
      const appPort = await freePort(['127.0.0.1', '127.0.0.2'])
      const manifest = join(dir, 'kms.yaml')
      writeFileSync(
        manifest,
        [
          'version: v1',
          'name: kms-app',
          'target: kms-app:latest',
          'sources:',
          '  app: kms-app:latest',
          'ingress:',
          `  - listen_port: ${appPort}`,
          'egress:',
          `  proxy_port: ${await freePort()}`,
          '  allow:',
          '    - 127.0.0.1',
          'kms_proxy:',
          `  listen_port: ${await freePort()}`,
          '  endpoints:',
          `    us-east-1: ${kms.url}`,
          '',
        ].join('\n'),
      )
      const { out, err, exited } = simulate(manifest, {
        APP_PORT: String(appPort),
        XDG_CONFIG_HOME: xdg,
        NODE_EXTRA_CA_CERTS: caFile,
        AWS_ACCESS_KEY_ID: creds.accessKeyId,
        AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      })
      const base = `http://127.0.0.2:${appPort}`
      await answers(`${base}/hello`, err)
      const result = (await (await fetch(`${base}/kms`)).json()) as {
        statuses: number[]
        roundTrip: boolean
        error?: string
      }
      expect(result, `${err()}\n${out()}`).toEqual({ statuses: [200, 200], roundTrip: true })
      // Both attesting calls reached KMS with a Recipient (the proxy inserted it) and were re-signed.
      expect(kms.requests.map((r) => r.action)).toEqual(['GenerateDataKey', 'Decrypt'])
      for (const r of kms.requests) expect(r.body.Recipient).toBeDefined()
      await fetch(`${base}/exit?code=0`)
      const [code] = await exited
      expect(code, err()).toBe(0)
    } finally {
      await kms.close()
    }
  })
  it('on a Nitro host (fake nitro-cli) starts the same host halves: ingress to the CID, egress by policy', async () => {
    const bin = join(dir, 'bin')
    mkdirSync(bin, { recursive: true })
    symlinkSync(FAKE_NITRO, join(bin, 'nitro-cli'))
    const config = join(dir, 'nitro-config')
    mkdirSync(config)
    const appPort = await freePort(['127.0.0.1', '127.0.0.2'])
    const manifest = join(config, 'enclaver.yaml')
    writeFileSync(
      manifest,
      [
        'version: v1',
        'name: nitro-app',
        'target: nitro-app:latest',
        'sources:',
        '  app: nitro-app:latest',
        'ingress:',
        `  - listen_port: ${appPort}`,
        'egress:',
        `  proxy_port: ${await freePort()}`,
        '  allow:',
        '    - host',
        '',
      ].join('\n'),
    )
    const child = spawn(
      process.execPath,
      // 127.0.0.2: on this one machine the "enclave" app already holds 127.0.0.1:<port>.
      [
        BIN,
        'run',
        '--eif',
        eif,
        '--manifest',
        manifest,
        '--enclave-cid',
        '18',
        '--ingress-host',
        '127.0.0.2',
      ],
      {
        env: {
          ...process.env,
          PATH: `${bin}:${process.env.PATH}`,
          FAKE_NITRO_LOG: join(dir, 'nitro.log'),
          FAKE_NITRO_MODE: 'ok',
          FAKE_NITRO_ODYN: ODYN,
          FAKE_NITRO_CONFIG: config,
          FAKE_NITRO_APP: JSON.stringify([process.execPath, join(dir, 'net-app.mjs')]),
          // Host and "enclave" reach each other over Unix sockets: nothing touches real vsock.
          ENCLAVE_VSOCK_DEV_DIR: join(dir, 'nitro-vsock'),
          APP_PORT: String(appPort),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    spawned.push(child)
    let stderr = ''
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    child.stdout!.resume()
    const exited = once(child, 'exit')
    const base = `http://127.0.0.2:${appPort}`
    await answers(`${base}/hello`, () => stderr)
    const allowed = (await (
      await fetch(`${base}/fetch?url=${encodeURIComponent(`http://host:${allowedPort}/`)}`)
    ).json()) as { status: number; body: string }
    expect(allowed).toEqual({ status: 200, body: 'allowed-target' })
    await fetch(`${base}/exit?code=9`)
    const [code] = await exited
    expect(code, stderr).toBe(9)
  })
  it('a manifest service that cannot start (kms_proxy without egress) is fatal: exit 108, and the app never runs', async () => {
    const manifest = join(dir, 'no-egress.yaml')
    writeFileSync(
      manifest,
      'version: v1\nname: a\ntarget: a:latest\nsources:\n  app: a:latest\nkms_proxy:\n  listen_port: 1\n',
    )
    const { out, err, exited } = simulate(manifest, { APP_PORT: String(await freePort()) })
    const [code] = await exited
    expect(code, err()).toBe(108)
    expect(err()).toContain('kms_proxy needs egress')
    expect(out()).not.toContain('app listening')
  })
})
