import { makeCa, makeLeaf, makeTempDir } from '@enclave/test-helpers'
import { silentLogger } from '@enclave/tunnel'
import { connect as vsockConnect } from '@enclave/vsock-transport'
import { afterAll, describe, expect, it } from 'vitest'
import { InvalidOptionsError, TlsFilesError } from '../src/errors.js'
import { enclaveOptionsFor, ingressFromManifest, ingressPlugin } from '../src/plugin.js'

describe('ingress plug-in for the supervisor', () => {
  const temp = makeTempDir('ingress-plugin-')
  afterAll(() => temp.remove())
  const dev = { dir: temp.path, cid: 16 }
  const ctx = (manifest: unknown) => ({
    manifest,
    logger: silentLogger,
    signal: new AbortController().signal,
    dev,
  })

  it('honours tls.cert_file/key_file/client_ca_file and proxy_protocol from the manifest', () => {
    expect(
      enclaveOptionsFor({
        listen_port: 443,
        tls: { cert_file: '/c.pem', key_file: '/k.pem', client_ca_file: '/ca.pem' },
        proxy_protocol: true,
      }),
    ).toEqual({
      listenPort: 443,
      tls: { certFile: '/c.pem', keyFile: '/k.pem', clientCaFile: '/ca.pem' },
      proxyProtocol: true,
    })
  })

  it('rejects malformed ingress entries', () => {
    expect(() => ingressFromManifest({ ingress: {} })).toThrow(InvalidOptionsError)
    expect(() => ingressFromManifest({ ingress: [{ listen_port: 'x' }] })).toThrow(
      /ingress\[0\]\.listen_port/,
    )
    expect(() => ingressFromManifest({ ingress: [{ listen_port: 1, tls: { cert_file: '/c' } }] })).toThrow(
      /cert_file and key_file/,
    )
    expect(ingressFromManifest({})).toEqual([])
  })

  it('starts one listener per entry and stops them', async () => {
    const ca = makeCa(temp.path, 'ca')
    const leaf = makeLeaf(temp.path, 'srv', ca, { san: 'DNS:localhost' })
    const handle = await ingressPlugin().start(
      ctx({
        ingress: [
          { listen_port: 18080 },
          { listen_port: 18443, tls: { cert_file: leaf.cert, key_file: leaf.key } },
        ],
      }),
    )
    expect(handle).toBeDefined()
    for (const port of [18080, 18443]) {
      const socket = await vsockConnect(`vsock://16:${port}`, { dev: { dir: temp.path } })
      socket.destroy()
    }
    await handle!.stop()
    await expect(
      vsockConnect('vsock://16:18080', { dev: { dir: temp.path }, timeoutMs: 2000 }),
    ).rejects.toThrow()
  })

  it('fails start-up with the missing file named, leaving nothing listening', async () => {
    await expect(
      ingressPlugin().start(
        ctx({
          ingress: [
            { listen_port: 18081 },
            {
              listen_port: 18444,
              tls: { cert_file: `${temp.path}/missing.pem`, key_file: `${temp.path}/missing.key` },
            },
          ],
        }),
      ),
    ).rejects.toThrow(TlsFilesError)
    await expect(
      vsockConnect('vsock://16:18081', { dev: { dir: temp.path }, timeoutMs: 2000 }),
    ).rejects.toThrow()
  })
})
