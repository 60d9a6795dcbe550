/**
 * The tests' KMS endpoint: @enclave/kms/dev-endpoint (SigV4 checks, Recipient attestation, real
 * CMS envelopes) with a fresh loopback certificate and a verifier pinned to the given root.
 */

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createAttestationVerifier } from '@enclave/attestation'
import { makeTempDir } from '@enclave/test-helpers'
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

/** A self-signed certificate for 127.0.0.1, made with openssl. */
export function makeLoopbackCert(): { key: string; cert: string } {
  const dir = makeTempDir('fake-kms-')
  try {
    const key = join(dir.path, 'key.pem')
    const cert = join(dir.path, 'cert.pem')
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    )
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') }
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
