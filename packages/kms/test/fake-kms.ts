/**
 * The tests' KMS endpoint: @enclave/kms/dev-endpoint (SigV4 checks, Recipient attestation, real
 * CMS envelopes) with a fresh loopback certificate and a verifier pinned to the given root.
 */

import { readFileSync } from 'node:fs'
import { createAttestationVerifier } from '@enclave/attestation'
import { makeCa, makeLeaf, makeTempDir } from '@enclave/test-helpers'
import { type DevKmsEndpoint, startDevKmsEndpoint } from '../src/dev-endpoint.js'

export interface FakeKmsOptions {
  /** Root (PEM) the Recipient documents must chain to. */
  root: string
  /** The only credentials whose signatures are accepted. */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  /** PCR conditions on Recipient documents (index → hex). */
  pcrs?: Record<number, string>
}

export interface FakeKms extends DevKmsEndpoint {
  /** The endpoint's certificate (self-signed), for the client's trust store. */
  readonly caPem: string
}

/**
 * A certificate for 127.0.0.1 (test-helpers' CA and leaf): `cert` holds the leaf followed by its
 * CA, so it serves as the server's chain and as a client's trust anchor alike.
 */
export function makeLoopbackCert(): { key: string; cert: string } {
  const dir = makeTempDir('fake-kms-')
  try {
    const ca = makeCa(dir.path, 'ca')
    const leaf = makeLeaf(dir.path, 'server', ca, { san: 'IP:127.0.0.1' })
    const read = (path: string) => readFileSync(path, 'utf8')
    return { key: read(leaf.key), cert: read(leaf.cert) + read(ca.cert) }
  } finally {
    dir.remove()
  }
}

export async function startFakeKms(options: FakeKmsOptions): Promise<FakeKms> {
  const tls = makeLoopbackCert()
  const endpoint = await startDevKmsEndpoint({
    tls,
    credentials: options.credentials,
    verifier: createAttestationVerifier({ roots: [options.root] }),
    ...(options.pcrs ? { pcrs: options.pcrs } : {}),
  })
  return Object.assign(endpoint, { caPem: tls.cert })
}
