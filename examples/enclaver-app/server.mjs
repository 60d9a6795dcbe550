// The enclave app: HTTP on 127.0.0.1:8000 (ingress forwards the same port from the host).
// GET /            → a greeting
// GET /attestation → a fresh attestation document (base64) for ?nonce=<hex>
// In a Nitro enclave it asks /dev/nsm; under `enclaver run --simulate` the simulator sets
// ENCLAVE_DEV_NSM_PCRS and the dev NSM reports the EIF's real PCR0/1/2 instead.
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openNsm } from '@enclave/attestation'

const pcrs = process.env.ENCLAVE_DEV_NSM_PCRS
const nsm = pcrs
  ? await openNsm({
      mode: 'dev',
      dev: { pcrs: JSON.parse(pcrs), dir: mkdtempSync(join(tmpdir(), 'dev-nsm-')) },
    })
  : await openNsm()
const port = Number(process.env.PORT ?? 8000)

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  console.log(`${req.method} ${url.pathname}`) // goes to the host through odyn's log channel
  if (url.pathname === '/attestation') {
    const nonce = url.searchParams.get('nonce')
    const doc = await nsm.getAttestationDocument(nonce ? { nonce: Buffer.from(nonce, 'hex') } : {})
    res.writeHead(200, { 'content-type': 'text/plain' }).end(Buffer.from(doc).toString('base64'))
    return
  }
  res.writeHead(200, { 'content-type': 'text/plain' }).end('hello from the enclave\n')
})
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`))
process.once('SIGTERM', () => {
  console.log('SIGTERM: closing')
  server.close(() => process.exit(0))
})
