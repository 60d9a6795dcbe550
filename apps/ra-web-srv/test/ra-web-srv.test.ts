import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  createAttestationVerifier,
  createAttestedConnector,
  decodeCoseSign1,
  parseAttestationDocument,
} from '@enclave/attestation'
import { makeTempDir, runCli, waitFor } from '@enclave/test-helpers'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const PCR0 = 'ab'.repeat(48)
const temp = makeTempDir('ra-web-srv-')
const watched = join(temp.path, 'watched')
let child: ChildProcess
let stderr = ''
let https: string
let http: string
let agent: Agent

beforeAll(async () => {
  mkdirSync(join(watched, 'node_modules'), { recursive: true })
  writeFileSync(join(watched, 'first.txt'), 'hello enclave\n')
  writeFileSync(join(watched, 'node_modules', 'skip.js'), 'ignored')
  writeFileSync(join(watched, 'debug.log'), 'ignored too')
  writeFileSync(join(watched, '.fsignore'), '# dependencies\nnode_modules\n')
  // describe-eif output of an EIF (only Measurements is read)
  writeFileSync(
    join(temp.path, 'eif.json'),
    JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: PCR0, PCR8: '88'.repeat(48) } }),
  )
  child = spawn(
    process.execPath,
    [
      BIN,
      '--dev',
      '--dev-dir',
      join(temp.path, 'ca'),
      '--dev-measurements',
      join(temp.path, 'eif.json'),
      '--https-port',
      '0',
      '--http-port',
      '0',
      '--watch',
      watched,
      '--ignore',
      '*.log',
      '--settle-ms',
      '100',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const line = await waitFor(() => stderr.split('\n').find((l) => l.includes('"msg":"listening"')), {
    timeoutMs: 30_000,
    what: 'listening',
  })
  const { https: httpsPort, http: httpPort } = JSON.parse(line!) as { https: number; http: number }
  https = `https://127.0.0.1:${httpsPort}`
  http = `http://127.0.0.1:${httpPort}`
  const verifier = createAttestationVerifier({
    roots: [readFileSync(join(temp.path, 'ca', 'root.crt.pem'), 'utf8')],
  })
  agent = new Agent({ connect: createAttestedConnector({ verifier, policy: { pcrs: { 0: PCR0 } } }) })
}, 60_000)

afterAll(async () => {
  await agent?.close()
  if (child && child.exitCode === null) {
    child.kill('SIGKILL')
    await once(child, 'exit')
  }
  temp.remove()
})

async function json(url: string, init: { method?: string; body?: unknown } = {}) {
  const res = await request(url, {
    method: (init.method ?? 'GET') as 'GET',
    dispatcher: url.startsWith('https') ? agent : undefined,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    headers: init.body === undefined ? {} : { 'content-type': 'application/json' },
  })
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked field by field by the assertions
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, any> }
}

describe('ra-web-srv (dev mode, the built bin)', () => {
  it('serves over attested HTTPS: the client checks the enclave PCRs before sending a request', async () => {
    expect(await json(`${https}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } })
    const wrong = new Agent({
      connect: createAttestedConnector({
        verifier: createAttestationVerifier({
          roots: [readFileSync(join(temp.path, 'ca', 'root.crt.pem'), 'utf8')],
        }),
        policy: { pcrs: { 0: 'cd'.repeat(48) } },
      }),
    })
    const err = await request(`${https}/healthz`, { dispatcher: wrong }).catch((e: unknown) => e)
    expect((err as { code?: string }).code).toBe('ENCLAVE_ATTESTATION_UNATTESTED_PEER')
    await wrong.close()
  })

  it('GET /pcrs lists the locked PCRs', async () => {
    const { body } = await json(`${http}/pcrs`)
    expect(body.pcrs['0']).toBe(PCR0)
    expect(body.pcrs['8']).toBe('88'.repeat(48))
    expect(Object.keys(body.pcrs)).toHaveLength(16)
  })

  it('POST /attestation returns raw CBOR with the requested nonce; GET gives base64 and JSON views', async () => {
    const res = await request(`${https}/attestation`, {
      method: 'POST',
      dispatcher: agent,
      body: JSON.stringify({ nonce: '0a0b0c', user_data: '68656c6c6f' }),
    })
    expect(res.headers['content-type']).toBe('application/cbor')
    const doc = new Uint8Array(await res.body.arrayBuffer())
    const verifier = createAttestationVerifier({
      roots: [readFileSync(join(temp.path, 'ca', 'root.crt.pem'), 'utf8')],
    })
    expect(
      verifier.verify(doc, {
        nonce: new Uint8Array([10, 11, 12]),
        userData: Buffer.from('hello'),
        pcrs: { 0: PCR0 },
      }).failures,
    ).toEqual([])
    const b64 = await request(`${http}/attestation?nonce=01&format=base64`)
    expect(parseAttestationDocument(Buffer.from(await b64.body.text(), 'base64')).document.nonce).toEqual(
      new Uint8Array([1]),
    )
    const view = await json(`${http}/attestation?public_key=beef&format=json`)
    expect(view.body.decoded.public_key).toBe('beef')
    expect(view.body.decoded.pcrs['0']).toBe(PCR0)
  })

  it('hashes watched files with SHA3-512 (as openssl computes it), honouring .fsignore and --ignore', async () => {
    const listed = await waitFor(
      async () => {
        const { body } = await json(`${http}/files`)
        return body.files.some((f: { path: string }) => f.path.endsWith('first.txt')) ? body.files : undefined
      },
      { timeoutMs: 15_000, what: 'first.txt hashed' },
    )
    const paths = listed.map((f: { path: string }) => f.path)
    expect(paths).not.toContain(join(watched, 'node_modules', 'skip.js'))
    expect(paths).not.toContain(join(watched, 'debug.log'))
    const expected = execFileSync('openssl', ['dgst', '-sha3-512', '-r', join(watched, 'first.txt')])
      .toString()
      .split(' ')[0]
    const { body } = await json(`${http}/files/hash?path=${encodeURIComponent(join(watched, 'first.txt'))}`)
    expect(body).toMatchObject({ hash: expected, algorithm: 'SHA3-512', size: 14 })
  })

  it('picks up new files in subfolders once written, and forgets deleted ones', async () => {
    mkdirSync(join(watched, 'sub', 'deeper'), { recursive: true })
    const path = join(watched, 'sub', 'deeper', 'new.bin')
    writeFileSync(path, Buffer.alloc(100_000, 7))
    const hash = await waitFor(
      async () => {
        const r = await json(`${http}/files/hash?path=${encodeURIComponent(path)}`)
        return r.status === 200 ? r.body.hash : undefined
      },
      { timeoutMs: 15_000, what: 'new file hashed' },
    )
    expect(hash).toBe(execFileSync('openssl', ['dgst', '-sha3-512', '-r', path]).toString().split(' ')[0])
    rmSync(path)
    await waitFor(
      async () => (await json(`${http}/files/hash?path=${encodeURIComponent(path)}`)).status === 404,
      {
        timeoutMs: 15_000,
        what: 'deleted file forgotten',
      },
    )
  })

  it('gives a statement signed by the attested key, which /verify/statement accepts and a tampered one fails', async () => {
    const path = join(watched, 'first.txt')
    const { body } = await json(`${https}/files/statement?path=${encodeURIComponent(path)}`)
    const statement = Buffer.from(body.statement, 'base64')
    const payload = JSON.parse(Buffer.from(decodeCoseSign1(statement).payload).toString())
    expect(payload).toMatchObject({ path, hash: body.hash, algorithm: 'SHA3-512' })
    const doc = parseAttestationDocument(Buffer.from(body.document, 'base64')).document
    expect(doc.publicKey?.length).toBeGreaterThan(0)
    const ok = await json(`${https}/verify/statement`, {
      method: 'POST',
      body: { statement: body.statement, document: body.document, pcrs: { 0: PCR0 } },
    })
    expect(ok.body).toMatchObject({ valid: true, statement: { path, hash: body.hash } })
    statement[statement.length - 3]! ^= 1
    const bad = await json(`${https}/verify/statement`, {
      method: 'POST',
      body: { statement: statement.toString('base64'), document: body.document },
    })
    expect(bad.body.valid).toBe(false)
    expect(bad.body.failures.map((f: { reason: string }) => f.reason)).toEqual(['bad-signature'])
  })

  it('POST /verify/document reports every failure of a posted document', async () => {
    const doc = await request(`${http}/attestation?format=base64`)
    const document = await doc.body.text()
    const good = await json(`${http}/verify/document`, {
      method: 'POST',
      body: { document, pcrs: { 0: PCR0 } },
    })
    expect(good.body.valid).toBe(true)
    const real = readFileSync(
      fileURLToPath(
        new URL(
          '../../../packages/attestation/test/fixtures/evervault/valid-attestation-doc-bytes',
          import.meta.url,
        ),
      ),
    )
    const bad = await json(`${http}/verify/document`, {
      method: 'POST',
      body: { document: real.toString('base64'), pcrs: { 0: PCR0 }, nonce: '00' },
    })
    expect(bad.body.valid).toBe(false)
    expect(new Set(bad.body.failures.map((f: { reason: string }) => f.reason))).toEqual(
      new Set(['expired', 'pcr-mismatch', 'nonce-mismatch']),
    )
    // the same real document inside its window: only the policy fails
    const inWindow = await json(`${http}/verify/document`, {
      method: 'POST',
      body: { document: real.toString('base64'), at: '2022-10-13T10:00:00Z' },
    })
    expect(inWindow.body.valid).toBe(true)
    expect(inWindow.body.document.module_id).toBe('i-020b6af9246d90e92-enc0183d09086c24190')
  })

  it('answers bad requests with typed JSON errors and exposes metrics', async () => {
    expect((await json(`${http}/nope`)).status).toBe(404)
    expect((await json(`${http}/pcrs`, { method: 'POST', body: {} })).status).toBe(405)
    expect((await json(`${http}/attestation?nonce=zz`)).body.error).toMatch(/nonce must be hex/)
    expect((await json(`${http}/attestation?nonce=${'00'.repeat(1025)}`)).status).toBe(400)
    expect(
      (await json(`${http}/verify/document`, { method: 'POST', body: { document: 'x'.repeat(70_000) } }))
        .status,
    ).toBe(413)
    const metrics = await (await request(`${http}/metrics`)).body.text()
    expect(metrics).toMatch(/ra_web_srv_attestation_documents_total \d+/)
    expect(metrics).toMatch(/ra_web_srv_files_hashed [1-9]/)
  })

  it('shuts down cleanly on SIGTERM', async () => {
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
    expect(stderr).toContain('shutting down')
  })
})

describe('ra-web-srv usage', () => {
  it('exit 2 on a bad option; exit 1 without --dev outside an enclave (no /dev/nsm)', async () => {
    expect((await runCli(BIN, ['--https-port', 'x'])).code).toBe(2)
    const r = await runCli(BIN, ['--https-port', '0'])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('ENCLAVE_ATTESTATION_NSM_UNAVAILABLE')
    expect((await runCli(BIN, ['--help'])).code).toBe(0)
    // an unreadable measurements file is a startup failure, named
    const m = await runCli(BIN, [
      '--dev',
      '--dev-dir',
      join(temp.path, 'ca2'),
      '--dev-measurements',
      join(temp.path, 'none.json'),
    ])
    expect(m.code).toBe(1)
    expect(m.stderr).toContain('none.json')
  })
})
