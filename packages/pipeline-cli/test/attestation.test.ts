import { createAttestationVerifier, createDevNsm, type DevNsm } from '@enclave/attestation'
import { makeTempDir } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AttestationFailedError,
  allOf,
  attestationVerifier,
  createPipelineClient,
  generateIdentity,
  pinnedKeyVerifier,
} from '../src/index.js'
import { type Fixture, startFixture, testIdentities } from './setup.js'

describe('attestation-based server identity (dev NSM)', () => {
  let nsm: DevNsm
  let fx: Fixture
  let bare: Fixture
  let dir: ReturnType<typeof makeTempDir>
  beforeAll(async () => {
    dir = makeTempDir('pipeline-devnsm-')
    nsm = await createDevNsm({ dir: dir.path, pcrs: { 8: 'ab'.repeat(48) } })
    fx = await startFixture('unix', { attest: (request) => nsm.getAttestationDocument(request) })
    bare = await startFixture('unix')
  })
  afterAll(async () => {
    await fx?.close()
    await bare?.close()
    await nsm?.close()
    dir?.remove()
  })

  const verifierFor = (pcrs: Record<number, string>) => {
    const documents = createAttestationVerifier({ roots: [nsm.rootCertificatePem], allowDebug: true })
    return attestationVerifier((document, expected) =>
      documents.assert(document, { nonce: expected.nonce, publicKey: expected.publicKey, pcrs }),
    )
  }

  it('accepts a server whose document binds its TLS key and matches the PCRs', async () => {
    const client = fx.client({ verifier: allOf([verifierFor({ 8: 'ab'.repeat(48) })]) })
    expect((await client.run({ argv: ['true'] })).code).toBe(0)
  })

  it('refuses a document with other PCRs', async () => {
    const client = fx.client({ verifier: verifierFor({ 8: 'cd'.repeat(48) }) })
    await expect(client.run({ argv: ['true'] })).rejects.toBeInstanceOf(AttestationFailedError)
  })

  it('refuses a document that binds another key', async () => {
    const other = await generateIdentity('impostor')
    const { X509Certificate } = await import('node:crypto')
    const otherSpki = new X509Certificate(other.cert).publicKey.export({ type: 'spki', format: 'der' })
    const impostor = await startFixture('unix', {
      attest: (request) => nsm.getAttestationDocument({ nonce: request.nonce, publicKey: otherSpki }),
    })
    try {
      const client = impostor.client({ verifier: verifierFor({}) })
      await expect(client.run({ argv: ['true'] })).rejects.toBeInstanceOf(AttestationFailedError)
    } finally {
      await impostor.close()
    }
  })

  it('refuses a server that cannot attest', async () => {
    const [, clientIdentity] = await testIdentities()
    const client = createPipelineClient({
      address: bare.address,
      identity: clientIdentity,
      verifier: allOf([pinnedKeyVerifier([bare.serverIdentity.fingerprint]), verifierFor({})]),
    })
    await expect(client.run({ argv: ['true'] })).rejects.toBeInstanceOf(AttestationFailedError)
  })
})
