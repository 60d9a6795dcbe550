// The enclave app (plain Node). odyn starts it after the manifest's services, so:
//   - ingress brings requests to 127.0.0.1:$PORT (8000) and, TLS already terminated with mTLS,
//     to 127.0.0.1:$TLS_PORT (8443);
//   - outbound HTTP goes through the egress proxy in $http_proxy, under the manifest's policy;
//   - attestation documents come from the enclave API on 127.0.0.1:$API_PORT (9000), which asks
//     /dev/nsm in an enclave or the dev NSM (reporting the EIF's PCRs) under --simulate;
//   - KMS calls go to odyn's KMS proxy in $AWS_KMS_ENDPOINT, which adds the Recipient, re-signs,
//     sends them through egress and decrypts CiphertextForRecipient into the plain fields.
// GET /                    → a greeting
// GET /attestation?nonce=H → a fresh attestation document, base64
// GET /outbound?url=U      → U fetched through egress: {"status", "body"} (403 when the policy refuses)
// GET /kms                 → GenerateDataKey, then Decrypt of its CiphertextBlob: {"statuses", "match"}
import { createServer, request } from 'node:http'

const port = Number(process.env.PORT ?? 8000)
const tlsPort = Number(process.env.TLS_PORT ?? 8443)
const apiPort = Number(process.env.API_PORT ?? 9000)

function call(options, body) {
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }))
    })
    req.setTimeout(20_000, () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * One KMS JSON 1.1 call through odyn's KMS proxy. Any AWS SDK would do (point its KMS endpoint at
 * $AWS_KMS_ENDPOINT); the proxy reads only the region and service from the Authorization scope,
 * and signs with the enclave's own credentials, so the app needs none.
 */
async function kms(action, body) {
  const endpoint = new URL(process.env.AWS_KMS_ENDPOINT)
  const r = await call(
    {
      host: endpoint.hostname,
      port: endpoint.port,
      method: 'POST',
      path: '/',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': `TrentService.${action}`,
        authorization:
          'AWS4-HMAC-SHA256 Credential=ANY/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00',
      },
    },
    JSON.stringify(body),
  )
  return { status: r.status, json: JSON.parse(r.body.toString('utf8') || '{}') }
}

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://localhost')
  console.log(`${req.method} ${url.pathname}`) // goes to the host through odyn's log channel
  if (url.pathname === '/attestation') {
    const nonce = Buffer.from(url.searchParams.get('nonce') ?? '', 'hex').toString('base64')
    const r = await call(
      { host: '127.0.0.1', port: apiPort, method: 'POST', path: '/v1/attestation' },
      JSON.stringify({ nonce }),
    )
    res.writeHead(r.status, { 'content-type': 'text/plain' }).end(r.body.toString('base64'))
  } else if (url.pathname === '/outbound') {
    // An absolute-URI request to the proxy, as any http_proxy-aware client sends it.
    const target = new URL(url.searchParams.get('url'))
    const proxy = new URL(process.env.http_proxy)
    const r = await call({
      host: proxy.hostname,
      port: proxy.port,
      path: target.href,
      headers: { host: target.host },
    })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ status: r.status, body: r.body.toString('utf8') }))
  } else if (url.pathname === '/kms') {
    const made = await kms('GenerateDataKey', { KeyId: 'alias/enclaver-app', KeySpec: 'AES_256' })
    const back = await kms('Decrypt', { CiphertextBlob: made.json.CiphertextBlob })
    const match = typeof made.json.Plaintext === 'string' && made.json.Plaintext === back.json.Plaintext
    console.log(`kms: GenerateDataKey ${made.status}, Decrypt ${back.status}, data keys match: ${match}`)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(
      JSON.stringify({
        statuses: [made.status, back.status],
        match,
        error: made.json.message ?? back.json.message,
      }),
    )
  } else {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('hello from the enclave\n')
  }
}

const onRequest = (req, res) =>
  handle(req, res).catch((err) => res.writeHead(500).end(String(err?.message ?? err)))
const servers = [createServer(onRequest), createServer(onRequest)]
servers[0].listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`))
servers[1].listen(tlsPort, '127.0.0.1', () =>
  console.log(`listening on 127.0.0.1:${tlsPort} (behind TLS ingress)`),
)
process.once('SIGTERM', () => {
  console.log('SIGTERM: closing')
  for (const s of servers) s.close()
  setTimeout(() => process.exit(0), 100).unref()
})
