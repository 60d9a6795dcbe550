import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import {
  type AttestationRequest,
  AttestedPeerError,
  connectAttested,
  createAttestationVerifier,
  createAttestedConnector,
  createAttestedTlsCredentials,
  decodeCoseSign1,
  type Nsm,
  parseAttestationDocument,
  signCoseSign1,
  toHex,
} from '@enclave/attestation'
import { makeTempDir, runCli, waitFor } from '@enclave/test-helpers'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyStatement } from '../src/statement.js'

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

function sha384(tag: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return new Uint8Array(createHash('sha384').update(tag).update(data).digest())
}

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

describe('an attacker using /attestation as a signing oracle for its own key', () => {
  let open: { child: ChildProcess; http: string } | undefined
  afterAll(async () => {
    if (open && open.child.exitCode === null) {
      open.child.kill('SIGKILL')
      await once(open.child, 'exit')
    }
  })

  /** A server started with --allow-caller-public-key, the most permissive setting. */
  async function permissive(): Promise<string> {
    if (open) return open.http
    const child = spawn(
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
        '--allow-caller-public-key',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let err = ''
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString()
    })
    const line = await waitFor(() => err.split('\n').find((l) => l.includes('"msg":"listening"')), {
      timeoutMs: 30_000,
      what: 'permissive server listening',
    })
    open = { child, http: `http://127.0.0.1:${(JSON.parse(line!) as { http: number }).http}` }
    return open.http
  }

  /** An Nsm whose documents come from the server's /attestation: what any network caller can do. */
  const oracle = (base: string): Nsm =>
    ({
      async getAttestationDocument(req: AttestationRequest = {}) {
        const q = new URLSearchParams({ format: 'base64' })
        if (req.publicKey) q.set('public_key', toHex(req.publicKey))
        if (req.userData) q.set('user_data', toHex(req.userData))
        if (req.nonce) q.set('nonce', toHex(req.nonce))
        const res = await request(`${base}/attestation?${q}`)
        const text = await res.body.text()
        if (res.statusCode !== 200) throw new Error(`/attestation: ${res.statusCode} ${text}`)
        return new Uint8Array(Buffer.from(text, 'base64'))
      },
    }) as unknown as Nsm

  it('cannot forge a statement: the document for its key is refused by /verify/statement', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const spki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }))
    const forged = signCoseSign1(
      Buffer.from(
        JSON.stringify({ path: '/etc/passwd', hash: '00'.repeat(64), algorithm: 'SHA3-512', size: 1 }),
      ),
      privateKey,
      { algorithm: 'ES384' },
    )
    let document: Uint8Array | undefined
    const tryForge = async (base: string) => {
      // its best try: its own key, and the statement-key tag computed over it as user_data
      document = await oracle(base).getAttestationDocument({
        publicKey: spki,
        userData: sha384('enclave-framework/ra-web-srv/statement-key/v1', spki),
      })
      return json(`${http}/verify/statement`, {
        method: 'POST',
        body: {
          statement: Buffer.from(forged).toString('base64'),
          document: Buffer.from(document).toString('base64'),
        },
      })
    }
    // the default server will not even bind the key
    await expect(tryForge(http)).rejects.toThrow(/403/)
    // a server allowing caller keys binds it, but the document does not make it the statement key
    const check = await tryForge(await permissive())
    expect(check.body.valid).toBe(false)
    expect(check.body.failures.map((f: { reason: string }) => f.reason)).toEqual(['key-not-bound'])
    // the document and signature are genuine: only the missing statement-key tag refuses it, and
    // the documented weaker opt-in (a bare public_key) would accept the forgery
    const verifier = createAttestationVerifier({
      roots: [readFileSync(join(temp.path, 'ca', 'root.crt.pem'), 'utf8')],
    })
    expect(verifyStatement(forged, document!, verifier).ok).toBe(false)
    expect(verifyStatement(forged, document!, verifier, undefined, { allowBarePublicKey: true }).ok).toBe(
      true,
    )
  }, 60_000)

  it('cannot impersonate the attested TLS server with a document for its own key', async () => {
    const base = await permissive()
    const verifier = createAttestationVerifier({
      roots: [readFileSync(join(temp.path, 'ca', 'root.crt.pem'), 'utf8')],
    })
    // the tagged binding (the default) and a bare public_key: both documents are genuine
    for (const binding of ['tagged', 'public_key'] as const) {
      const creds = await createAttestedTlsCredentials({
        nsm: oracle(base),
        binding,
        ipAddresses: ['127.0.0.1'],
      })
      expect(verifier.verify(creds.document, { pcrs: { 0: PCR0 } }).ok).toBe(true)
      const server = tls.createServer({ key: creds.key, cert: creds.cert }, (s) => s.end('secrets?'))
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const port = (server.address() as { port: number }).port
      const err = await connectAttested(
        { host: '127.0.0.1', port },
        { verifier, policy: { pcrs: { 0: PCR0 } } },
      ).catch((e: unknown) => e)
      server.close()
      expect(err).toBeInstanceOf(AttestedPeerError)
      expect((err as AttestedPeerError).failures.map((f) => f.reason)).toEqual(['key-not-bound'])
    }
  }, 60_000)
})

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
    // the caller's user_data comes back domain-separated, never raw
    expect(
      verifier.verify(doc, {
        nonce: new Uint8Array([10, 11, 12]),
        userData: sha384('enclave-framework/ra-web-srv/client/v1', Buffer.from('hello')),
        pcrs: { 0: PCR0 },
      }).failures,
    ).toEqual([])
    const b64 = await request(`${http}/attestation?nonce=01&format=base64`)
    expect(parseAttestationDocument(Buffer.from(await b64.body.text(), 'base64')).document.nonce).toEqual(
      new Uint8Array([1]),
    )
    const view = await json(`${http}/attestation?format=json`)
    expect(view.body.decoded.public_key).toBeNull()
    expect(view.body.decoded.user_data).toBe(toHex(sha384('enclave-framework/ra-web-srv/client/v1')))
    expect(view.body.decoded.pcrs['0']).toBe(PCR0)
    // binding a caller's key is off by default
    const refused = await json(`${http}/attestation?public_key=beef&format=json`)
    expect(refused.status).toBe(403)
    expect(refused.body.error).toMatch(/--allow-caller-public-key/)
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
    // the statement key is tagged as such in user_data
    expect(toHex(doc.userData!)).toBe(
      toHex(sha384('enclave-framework/ra-web-srv/statement-key/v1', doc.publicKey!)),
    )
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
