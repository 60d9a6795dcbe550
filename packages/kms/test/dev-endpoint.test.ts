import { Agent } from 'node:https'
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms'
import { createAttestationVerifier, createDevNsm, type DevNsm } from '@enclave/attestation'
import { makeTempDir } from '@enclave/test-helpers'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DevKmsEndpoint, startDevKmsEndpoint } from '../src/dev-endpoint.js'
import { attachRecipient, createRecipient, InvalidOptionError } from '../src/index.js'
import { makeLoopbackCert } from './fake-kms.js'

const CREDS = { accessKeyId: 'AKIADEVENDPOINT', secretAccessKey: 'dev-endpoint-secret' }
const PCR0 = '12'.repeat(48)

let dir: ReturnType<typeof makeTempDir>
let nsm: DevNsm
let tls: { key: string; cert: string }
const started: DevKmsEndpoint[] = []

beforeAll(async () => {
  dir = makeTempDir('kms-dev-endpoint-')
  nsm = await createDevNsm({ dir: dir.path, pcrs: { 0: PCR0 } })
  tls = makeLoopbackCert()
})
afterAll(async () => {
  for (const e of started) await e.close()
  await nsm?.close()
  dir?.remove()
})

const client = (url: string, credentials = CREDS) =>
  new KMSClient({
    region: 'us-east-1',
    endpoint: url,
    credentials,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca: tls.cert }) }),
  })

describe('@enclave/kms/dev-endpoint', () => {
  it('refuses incomplete options naming what is missing, before listening', async () => {
    const verifier = createAttestationVerifier({ roots: [nsm.rootCertificatePem] })
    const base = { tls, credentials: CREDS, verifier }
    await expect(startDevKmsEndpoint({ ...base, tls: { key: '', cert: tls.cert } })).rejects.toThrow(
      /tls\.key and tls\.cert are required/,
    )
    await expect(
      startDevKmsEndpoint({ ...base, credentials: { accessKeyId: 'A', secretAccessKey: '' } }),
    ).rejects.toThrow(/credentials\.accessKeyId and credentials\.secretAccessKey/)
    await expect(
      startDevKmsEndpoint({ ...base, verifier: undefined as unknown as typeof verifier }),
    ).rejects.toThrow(/verifier is required: e\.g\. createAttestationVerifier/)
    await expect(startDevKmsEndpoint({ ...base, port: 70000 })).rejects.toBeInstanceOf(InvalidOptionError)
  })

  it('round-trips a data key sealed to the Recipient, and refuses a document whose PCR0 does not match', async () => {
    const endpoint = await startDevKmsEndpoint({
      tls,
      credentials: CREDS,
      verifier: createAttestationVerifier({ roots: [nsm.rootCertificatePem] }),
      pcrs: { 0: PCR0 },
    })
    started.push(endpoint)
    expect(endpoint.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    const kms = client(endpoint.url)
    attachRecipient(kms, createRecipient({ nsm }))
    const key = await kms.send(new GenerateDataKeyCommand({ KeyId: 'demo', KeySpec: 'AES_256' }))
    const back = await kms.send(new DecryptCommand({ CiphertextBlob: key.CiphertextBlob }))
    expect(Buffer.from(back.Plaintext!).equals(Buffer.from(key.Plaintext!))).toBe(true)
    // The endpoint answered in CiphertextForRecipient only (attachRecipient opened it).
    expect(endpoint.requests.map((r) => r.action)).toEqual(['GenerateDataKey', 'Decrypt'])
    for (const r of endpoint.requests) expect(r.body.Recipient).toBeDefined()

    const strict = await startDevKmsEndpoint({
      tls,
      credentials: CREDS,
      verifier: createAttestationVerifier({ roots: [nsm.rootCertificatePem] }),
      pcrs: { 0: 'ff'.repeat(48) },
    })
    started.push(strict)
    const refused = client(strict.url)
    attachRecipient(refused, createRecipient({ nsm }))
    await expect(
      refused.send(new GenerateDataKeyCommand({ KeyId: 'demo', KeySpec: 'AES_256' })),
    ).rejects.toMatchObject({ name: 'AccessDeniedException' })
    // Someone else's credentials are refused like KMS would.
    await expect(
      client(endpoint.url, { accessKeyId: 'AKIAOTHER', secretAccessKey: 'x' }).send(
        new GenerateDataKeyCommand({ KeyId: 'demo', KeySpec: 'AES_256' }),
      ),
    ).rejects.toMatchObject({ name: 'UnrecognizedClientException' })
  })
})
