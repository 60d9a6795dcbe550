// pnpm start: runs server.mjs under `enclaver run --simulate` with the manifest's networking and
// checks every path: plain and mTLS ingress, an allowed and a refused outbound call, an
// attestation carrying the EIF's PCR0, a KMS round trip through odyn's KMS proxy, logs on the
// host. Nothing leaves this machine: the "outside" services are local HTTP servers reached through
// the egress rule `host`, KMS is @enclave/kms/dev-endpoint on 127.0.0.3 (egress rule `127.0.0.3`),
// and every port is a free one (the manifest is copied with them). `node demo.mjs app.eif` uses your EIF;
// without one a small placeholder EIF is written only for its measurements.
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { createRequire } from 'node:module'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createAttestationVerifier, createDevNsm, parseAttestationDocument } from '@enclave/attestation'
import { describeEif, writeEif } from '@enclave/eif'
import { startDevKmsEndpoint } from '@enclave/kms/dev-endpoint'

const here = dirname(fileURLToPath(import.meta.url))
const enclaver = join(
  dirname(createRequire(import.meta.url).resolve('@enclave/enclaver-app/package.json')),
  'dist/main.js',
)
const dir = mkdtempSync(join(tmpdir(), 'enclaver-app-'))
chmodSync(dir, 0o755) // as root, odyn runs the app as uid 1000
const servers = []
let run
let kms
const checks = []
const check = (what, ok) => {
  checks.push(ok)
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`)
}

try {
  let eif = process.argv[2]
  if (!eif) {
    eif = join(dir, 'placeholder.eif')
    await writeEif(eif, {
      kernel: 'placeholder kernel',
      cmdline: 'console=ttyS0',
      ramdisks: ['bootstrap', 'app'],
    })
  }
  const { PCR0 } = (await describeEif(eif)).Measurements

  // Certificates for the mTLS ingress: a server certificate, and a client CA with one client.
  const tls = makeCertificates(dir)
  // Free ports; the ingress ones must be free on 127.0.0.1 (the app) and 127.0.0.2 (the host side).
  const port = await freePort(['127.0.0.1', '127.0.0.2'])
  const tlsPort = await freePort(['127.0.0.1', '127.0.0.2'])
  const proxyPort = await freePort(['127.0.0.1'])
  const apiPort = await freePort(['127.0.0.1'])
  const kmsProxyPort = await freePort(['127.0.0.1'])

  // KMS: the development endpoint (it does not protect keys) stands in for AWS KMS. Like a key
  // policy with kms:RecipientAttestation:PCR0, it releases keys only to documents carrying the
  // EIF's PCR0, signed by the dev NSM odyn uses (a fresh one under this temp XDG_CONFIG_HOME).
  const xdg = join(dir, 'xdg')
  const devNsm = await createDevNsm({ dir: join(xdg, 'enclave', 'dev-nsm') })
  const devRoot = devNsm.rootCertificatePem
  await devNsm.close()
  const kmsCredentials = { accessKeyId: 'AKIADEVENCLAVERAPP', secretAccessKey: 'dev-only-secret' }
  const kmsCert = leafCertificate(
    dir,
    'kms',
    tls.serverCa,
    'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.3',
  )
  kms = await startDevKmsEndpoint({
    tls: { key: readFileSync(kmsCert.key), cert: readFileSync(kmsCert.cert) },
    credentials: kmsCredentials,
    verifier: createAttestationVerifier({ roots: [devRoot] }),
    pcrs: { 0: PCR0 },
    host: '127.0.0.3',
  })
  const manifest = join(dir, 'enclaver.yaml')
  writeFileSync(
    manifest,
    substitute(readFileSync(join(here, 'enclaver.yaml'), 'utf8'), [
      ['listen_port: 8000', `listen_port: ${port}`],
      ['listen_port: 8443', `listen_port: ${tlsPort}`],
      ['listen_port: 9000', `listen_port: ${apiPort}`],
      ['proxy_port: 10000', `proxy_port: ${proxyPort}`],
      ['listen_port: 9999', `listen_port: ${kmsProxyPort}`],
      ['https://127.0.0.3:4443', kms.url],
      ['/app/tls/server.crt', tls.server.cert],
      ['/app/tls/server.key', tls.server.key],
      ['/app/tls/clients-ca.crt', tls.clientsCa.cert],
    ]),
  )
  copyFileSync(join(here, 'server.mjs'), join(dir, 'server.mjs'))
  const allowedPort = await localService('an allowed outside service\n')
  const refusedPort = await localService('you should never see this\n')

  const started = performance.now()
  run = spawn(
    process.execPath,
    [
      enclaver,
      'run',
      '--simulate',
      '--eif',
      eif,
      '--manifest',
      manifest,
      '--',
      process.execPath,
      join(dir, 'server.mjs'),
    ],
    {
      env: {
        ...process.env,
        PORT: String(port),
        TLS_PORT: String(tlsPort),
        API_PORT: String(apiPort),
        // odyn's dev NSM, and what its KMS proxy needs: the endpoint's CA and the credentials it
        // signs with (handed over, as a launcher can; on Nitro it uses the instance role via IMDS).
        XDG_CONFIG_HOME: xdg,
        NODE_EXTRA_CA_CERTS: tls.serverCa.cert,
        AWS_ACCESS_KEY_ID: kmsCredentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: kmsCredentials.secretAccessKey,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  )
  // Under --simulate the host's ingress listeners are on 127.0.0.2 (the app holds 127.0.0.1:<port>).
  const base = `http://127.0.0.2:${port}`
  let answered = false
  for (let i = 0; i < 300 && !answered; i++) {
    try {
      answered = (await fetch(`${base}/`)).ok
    } catch {
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  if (!answered) throw new Error('the app did not answer through ingress within 30 s')
  console.log(`answered through ingress after ${(performance.now() - started).toFixed(0)} ms`)

  const doc = parseAttestationDocument(
    Buffer.from(await (await fetch(`${base}/attestation?nonce=c0ffee`)).text(), 'base64'),
  )
  check("the attestation's PCR0 is the EIF's", Buffer.from(doc.document.pcrs.get(0)).toString('hex') === PCR0)

  const outbound = async (url) => (await fetch(`${base}/outbound?url=${encodeURIComponent(url)}`)).json()
  const allowed = await outbound(`http://host:${allowedPort}/`)
  check(`allowed outbound call (egress rule "host"): ${allowed.status}`, allowed.status === 200)
  const refused = await outbound(`http://127.0.0.1:${refusedPort}/`)
  check(
    `refused outbound call (not in the policy): ${refused.status} ${refused.body.trim()}`,
    refused.status === 403,
  )

  const viaMtls = await httpsGet(tlsPort, tls.serverCa.cert, tls.client).catch((e) => e)
  check(
    `HTTPS ingress with a client certificate${viaMtls instanceof Error ? `: ${viaMtls.message.trim()}` : ''}`,
    viaMtls === 'hello from the enclave\n',
  )
  const noCert = await httpsGet(tlsPort, tls.serverCa.cert, undefined).then(
    () => 'answered',
    (e) => e,
  )
  check('HTTPS ingress without a client certificate is refused', noCert instanceof Error)

  const roundTrip = await (await fetch(`${base}/kms`)).json()
  const attested = kms.requests.length === 2 && kms.requests.every((r) => r.body.Recipient !== undefined)
  check(
    `KMS round trip (GenerateDataKey + Decrypt, Recipient bound to PCR0): ${roundTrip.statuses.join(', ')}, data keys match: ${roundTrip.match}`,
    roundTrip.match === true && attested && roundTrip.statuses.every((s) => s === 200),
  )
} finally {
  if (run && run.exitCode === null) {
    run.kill('SIGINT')
    const code = await new Promise((r) => run.once('exit', r))
    console.log(`enclaver run exited with ${code} (109 = interrupted)`)
  }
  for (const s of servers) s.close()
  await kms?.close()
  rmSync(dir, { recursive: true, force: true })
}
process.exitCode = checks.length > 0 && checks.every(Boolean) ? 0 : 1

function substitute(text, pairs) {
  for (const [from, to] of pairs) {
    if (!text.includes(from)) throw new Error(`enclaver.yaml no longer contains "${from}"`)
    text = text.replaceAll(from, to)
  }
  return text
}

async function freePort(hosts) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const taken = []
    let port = 0
    let ok = true
    for (const host of hosts) {
      const s = createNetServer()
      taken.push(s)
      ok = await new Promise((r) => {
        s.once('error', () => r(false))
        s.listen(port, host, () => r(true))
      })
      if (!ok) break
      port = s.address().port
    }
    for (const s of taken) s.close()
    if (ok) return port
  }
  throw new Error('no free port')
}

async function localService(text) {
  const server = createServer((_req, res) => res.end(text))
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  servers.push(server)
  return server.address().port
}

function makeCertificates(dir) {
  const openssl = (args) => execFileSync('openssl', args, { stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  const ca = (name) => {
    const pem = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
    openssl([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      pem.key,
      '-out',
      pem.cert,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ])
    return pem
  }
  const leaf = (name, issuer, ext) => leafCertificate(dir, name, issuer, ext)
  const serverCa = ca('server-ca')
  const clientsCa = ca('clients-ca')
  return {
    // The client trusts server-ca; the enclave trusts clients-ca (client_ca_file).
    serverCa,
    clientsCa,
    server: leaf('server', serverCa, 'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost'),
    client: leaf('client', clientsCa, 'extendedKeyUsage=clientAuth'),
  }
}

function leafCertificate(dir, name, issuer, ext) {
  const openssl = (args) => execFileSync('openssl', args, { stdio: 'pipe' })
  const pem = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
  writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\n${ext}\n`)
  openssl([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    pem.key,
    '-out',
    join(dir, `${name}.csr`),
    '-subj',
    `/CN=${name}`,
  ])
  openssl([
    'x509',
    '-req',
    '-in',
    join(dir, `${name}.csr`),
    '-CA',
    issuer.cert,
    '-CAkey',
    issuer.key,
    '-CAcreateserial',
    '-out',
    pem.cert,
    '-days',
    '2',
    '-extfile',
    join(dir, `${name}.ext`),
  ])
  return pem
}

function httpsGet(port, serverCaFile, client) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.2',
        port,
        path: '/',
        servername: 'localhost',
        ca: readFileSync(serverCaFile),
        ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
      },
      (res) => {
        let body = ''
        res.on('data', (c) => {
          body += c
        })
        res.on('end', () => resolve(body))
      },
    )
    req.setTimeout(20_000, () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}
