import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createEgressConnector, createRecipient, startKmsProxy, staticCredentials } from '../src/index.js'

const nsm = { getAttestationDocument: async () => new Uint8Array([1]) }
const invalid = expect.objectContaining({ code: 'ENCLAVE_KMS_INVALID_OPTION' })

describe('option validation', () => {
  it('createRecipient wants an NSM and an RSA ≥ 2048 private key', () => {
    expect(() => createRecipient({} as never)).toThrow(invalid)
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    expect(() => createRecipient({ nsm, privateKey: ec })).toThrow(invalid)
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey
    expect(() => createRecipient({ nsm, privateKey: small })).toThrow(invalid)
    expect(createRecipient({ nsm }).publicKeyDer.length).toBe(294) // RSA-2048 SPKI
  })

  it('the recipient names an NSM failure', async () => {
    const failing = createRecipient({
      nsm: {
        getAttestationDocument: async () => {
          throw new Error('device gone')
        },
      },
    })
    await expect(failing.field()).rejects.toMatchObject({
      code: 'ENCLAVE_KMS_ATTESTATION_FAILED',
      message: /device gone/,
    })
  })

  it('startKmsProxy refuses bad ports, endpoints and limits before listening', async () => {
    const deps = {
      recipient: createRecipient({ nsm }),
      credentials: staticCredentials({ accessKeyId: 'a', secretAccessKey: 'b' }),
    }
    await expect(startKmsProxy({ port: 70000 }, deps)).rejects.toMatchObject({
      code: 'ENCLAVE_KMS_INVALID_OPTION',
      message: /port/,
    })
    await expect(
      startKmsProxy({ port: 0, endpoints: { 'us-east-1': 'http://kms.local' } }, deps),
    ).rejects.toMatchObject({
      code: 'ENCLAVE_KMS_INVALID_OPTION',
      message: /https/,
    })
    await expect(
      startKmsProxy({ port: 0, endpoints: { 'bad region!': 'kms.local' } }, deps),
    ).rejects.toMatchObject({
      code: 'ENCLAVE_KMS_INVALID_OPTION',
    })
    await expect(startKmsProxy({ port: 0, maxBodyBytes: 0 }, deps)).rejects.toMatchObject({
      code: 'ENCLAVE_KMS_INVALID_OPTION',
      message: /maxBodyBytes/,
    })
    await expect(startKmsProxy({ port: 0 }, {} as never)).rejects.toMatchObject({
      code: 'ENCLAVE_KMS_INVALID_OPTION',
    })
    expect(() => createEgressConnector('socks://x')).toThrow(invalid)
  })
})
