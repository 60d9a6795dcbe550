import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, copyFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  AttestedPeerError,
  connectAttested,
  createAttestationVerifier,
  createDevNsm,
} from '@enclave/attestation'
import { describeEif, writeEif } from '@enclave/eif'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// `tls.attested: true` end to end: enclaver run --simulate → host ingress (127.0.0.2) → vsock →
// odyn's ingress, which terminates TLS with a certificate carrying a dev-NSM attestation document
// of the EIF's PCRs → the app's plain HTTP on 127.0.0.1. The app is run-networking's fixture.
const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const ODYN = fileURLToPath(new URL('../dist/odyn.js', import.meta.url))
const APP = fileURLToPath(new URL('./fixtures/net-app.mjs', import.meta.url))

const temp = makeTempDir('enclaver-attested-')
const dir = temp.path
let child: ChildProcess | undefined

/** A port free on 127.0.0.1 (the app) and 127.0.0.2 (the simulator's host listener) right now. */
async function freeIngressPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const probes = [createServer(), createServer()]
    await new Promise<void>((r) => probes[0]!.listen(0, '127.0.0.1', r))
    const port = (probes[0]!.address() as { port: number }).port
    const ok = await new Promise<boolean>((r) => {
      probes[1]!.once('error', () => r(false))
      probes[1]!.listen(port, '127.0.0.2', () => r(true))
    })
    await Promise.all(probes.map((p) => new Promise<void>((r) => (p.listening ? p.close(() => r()) : r()))))
    if (ok) return port
  }
  throw new Error('no port free on both 127.0.0.1 and 127.0.0.2')
}

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM')
    await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 20_000))])
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  temp.remove()
})

describe('enclaver run --simulate with an attested TLS ingress entry', () => {
  let pcr0 = ''
  let root = ''
  let port = 0
  let stdout = ''
  let stderr = ''
  let exited: Promise<unknown[]>

  beforeAll(async () => {
    chmodSync(dir, 0o755) // the app runs as uid 1000 when the tests run as root
    copyFileSync(APP, join(dir, 'net-app.mjs'))
    const eif = join(dir, 'app.eif')
    await writeEif(eif, {
      kernel: Buffer.from('KERNEL'.repeat(64)),
      cmdline: 'console=ttyS0',
      ramdisks: [Buffer.from('bootstrap'.repeat(32)), Buffer.from('attested'.repeat(32))],
    })
    pcr0 = (await describeEif(eif)).Measurements.PCR0
    // odyn's dev NSM lives in $XDG_CONFIG_HOME/enclave/dev-nsm: make it first, to pin its root.
    const xdg = join(dir, 'xdg')
    const nsm = await createDevNsm({ dir: join(xdg, 'enclave', 'dev-nsm') })
    root = nsm.rootCertificatePem
    await nsm.close()

    port = await freeIngressPort()
    const manifest = join(dir, 'enclaver.yaml')
    writeFileSync(
      manifest,
      [
        'version: v1',
        'name: attested-app',
        'target: attested-app:latest',
        'sources:',
        '  app: attested-app:latest',
        'ingress:',
        `  - listen_port: ${port}`,
        '    tls:',
        '      attested: true',
        '      dns_names:',
        '        - app.enclave.test',
        '',
      ].join('\n'),
    )
    // --debug-mode: odyn's own stderr joins enclaver's, so a failure message shows why odyn stopped.
    child = spawn(
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
        '--debug-mode',
        '--',
        process.execPath,
        join(dir, 'net-app.mjs'),
      ],
      {
        env: { ...process.env, APP_PORT: String(port), XDG_CONFIG_HOME: xdg },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString()
    })
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    exited = once(child, 'exit')
  }, 60_000)

  /** One HTTP/1.0 GET over an attested TLS connection pinning `expectedPcr0`; the whole answer. */
  async function attestedGet(expectedPcr0: string, path: string): Promise<string> {
    const verifier = createAttestationVerifier({ roots: [root] })
    const socket = await connectAttested(
      { host: '127.0.0.2', port, servername: 'app.enclave.test' },
      { verifier, policy: { pcrs: { 0: expectedPcr0 } } },
    )
    socket.setTimeout(20_000, () => socket.destroy(new Error('timed out')))
    // Written only once the attestation passed: a refused peer never sees the request.
    socket.end(`GET ${path} HTTP/1.0\r\nHost: app.enclave.test\r\n\r\n`)
    const chunks: Buffer[] = []
    for await (const chunk of socket) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString('utf8')
  }

  it('accepts the enclave whose certificate attests the EIF PCR0 and gets the app answer', async () => {
    let answer = ''
    // odyn's services and the app start after enclaver launched it: retry until all are up.
    await waitFor(
      async () => {
        try {
          answer = await attestedGet(pcr0, '/hello')
          // Ingress starts before the app: until the app listens, odyn closes after the handshake.
          return answer !== ''
        } catch (err) {
          // An attestation refusal here is a real failure, not a start-up race.
          if (err instanceof AttestedPeerError) throw err
          return false
        }
      },
      { what: 'the attested ingress to answer', timeoutMs: 60_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nenclaver stderr:\n${stderr}`)
    })
    expect(answer).toMatch(/^HTTP\/1\.[01] 200 /)
    expect(answer.endsWith('hello through ingress\n')).toBe(true)
    await waitFor(() => stdout.includes('GET /hello'), { what: "the app's log line on the host" })
  }, 90_000)

  it('refuses an enclave with another PCR0 before sending any data', async () => {
    const wrong = pcr0.replace(/^./, (c) => (c === '0' ? '1' : '0'))
    const refused = await attestedGet(wrong, '/refused').then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(refused).toBeInstanceOf(AttestedPeerError)
    expect((refused as AttestedPeerError).failures.map((f) => f.reason)).toEqual(['pcr-mismatch'])
    // The app logs every request it gets: after a later accepted one, /refused must not be there.
    expect(await attestedGet(pcr0, '/after')).toMatch(/^HTTP\/1\.[01] 404 /)
    await waitFor(() => stdout.includes('GET /after'), { what: "the app's log line for /after" })
    expect(stdout).not.toContain('GET /refused')
  }, 90_000)

  it('the app exits through ingress; enclaver returns its code', async () => {
    expect(await attestedGet(pcr0, '/exit?code=7')).toContain('bye\n')
    const [code] = await exited
    expect(code, stderr).toBe(7)
  }, 60_000)
})
