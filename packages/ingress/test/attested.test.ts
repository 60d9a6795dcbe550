import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import {
  connectAttested,
  createAttestationVerifier,
  createAttestedTlsCredentials,
  createDevNsm,
  type DevNsm,
} from '@enclave/attestation'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { silentLogger } from '@enclave/tunnel'
import { connect as vsockConnect } from '@enclave/vsock-transport'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startIngressEnclave } from '../src/enclave.js'
import { InvalidOptionsError } from '../src/errors.js'
import { startIngressHost } from '../src/host.js'
import { ingressPlugin } from '../src/plugin.js'

const PCR0 = 'ab'.repeat(48)

describe('attested ingress certificate (manifest tls.attested)', () => {
  const temp = makeTempDir('ingress-attested-')
  let nsm: DevNsm
  let app: Server
  let appPort = 0

  beforeAll(async () => {
    nsm = await createDevNsm({ dir: join(temp.path, 'nsm'), pcrs: { 0: PCR0 } })
    app = createServer((s) => {
      s.on('error', () => {})
      s.end('attested hello')
    })
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()))
    appPort = (app.address() as { port: number }).port
  })
  afterAll(() => {
    app?.close()
    temp.remove()
  })

  it('serves a certificate whose attestation document binds its key; an attesting client accepts it', async () => {
    const probe = createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()))
    const port = (probe.address() as { port: number }).port
    await new Promise<void>((r) => probe.close(() => r()))
    const dev = { dir: temp.path, cid: 16 }
    const handle = await ingressPlugin({ appPort }).start({
      manifest: { ingress: [{ listen_port: port, tls: { attested: true, dns_names: ['localhost'] } }] },
      logger: silentLogger,
      signal: new AbortController().signal,
      dev,
      nsm,
    })
    const host = await startIngressHost({
      listenPort: port,
      enclaveCid: 16,
      listenHost: '127.0.0.1',
      dev: { dir: temp.path },
    })
    try {
      const verifier = createAttestationVerifier({ roots: [nsm.rootCertificatePem] })
      const socket = await connectAttested(
        { host: '127.0.0.1', port, servername: 'localhost' },
        { verifier, policy: { pcrs: { 0: PCR0 } } },
      )
      expect(socket.attestation.ok).toBe(true)
      const chunks: Buffer[] = []
      for await (const chunk of socket) chunks.push(chunk as Buffer)
      expect(Buffer.concat(chunks).toString()).toBe('attested hello')
      // A client pinning other PCRs refuses the same endpoint.
      await expect(
        connectAttested(
          { host: '127.0.0.1', port, servername: 'localhost' },
          { verifier, policy: { pcrs: { 0: 'cd'.repeat(48) } } },
        ),
      ).rejects.toThrow()
    } finally {
      await host.close()
      await handle?.stop()
    }
  })

  it('refreshes the credentials: new connections get the new certificate', async () => {
    let calls = 0
    const half = await startIngressEnclave({
      listenPort: 18_498,
      appPort,
      tls: {
        credentials: () => {
          calls++
          return createAttestedTlsCredentials({ nsm })
        },
        refreshMs: 1000,
      },
      dev: { dir: temp.path, cid: 16 },
    })
    const fingerprint = async (): Promise<string> => {
      const raw = await vsockConnect('vsock://16:18498', { dev: { dir: temp.path } })
      return new Promise((resolve, reject) => {
        const s = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' }, () => {
          resolve(s.getPeerX509Certificate()?.fingerprint256 ?? '')
          s.destroy()
        })
        s.on('error', reject)
      })
    }
    try {
      const first = await fingerprint()
      await waitFor(() => calls >= 2, { timeoutMs: 15_000, what: 'a credentials refresh' })
      await waitFor(async () => (await fingerprint()) !== first, {
        timeoutMs: 15_000,
        what: 'the new certificate',
      })
    } finally {
      await half.close()
    }
  })

  it('needs the NSM', async () => {
    await expect(
      ingressPlugin().start({
        manifest: { ingress: [{ listen_port: 18_499, tls: { attested: true } }] },
        logger: silentLogger,
        signal: new AbortController().signal,
        dev: { dir: temp.path, cid: 16 },
      }),
    ).rejects.toThrow(InvalidOptionsError)
  })
})
