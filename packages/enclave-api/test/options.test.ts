import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createEnclaveApiServer } from '../src/index.js'

const nsm = {
  getAttestationDocument: async () => new Uint8Array([1]),
  getRandom: async () => {
    throw new Error('NSM offline')
  },
}
const invalid = expect.objectContaining({ code: 'ENCLAVE_API_INVALID_OPTION' })

describe('createEnclaveApiServer options', () => {
  it('refuses bad ports, limits, keys and a missing NSM', () => {
    expect(() => createEnclaveApiServer({ port: -1 }, { nsm })).toThrow(invalid)
    expect(() => createEnclaveApiServer({ port: 0, replayCacheSize: 0 }, { nsm })).toThrow(invalid)
    expect(() => createEnclaveApiServer({ port: 0, maxBodyBytes: 1.5 }, { nsm })).toThrow(invalid)
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    expect(() => createEnclaveApiServer({ port: 0, encryptionKey: p256 }, { nsm })).toThrow(invalid)
    expect(() => createEnclaveApiServer({ port: 0 }, {} as never)).toThrow(invalid)
  })

  it('listen fails with ENCLAVE_API_NSM_FAILED when the NSM cannot make the key; a given key needs no NSM', async () => {
    await expect(createEnclaveApiServer({ port: 0 }, { nsm }).listen()).rejects.toMatchObject({
      code: 'ENCLAVE_API_NSM_FAILED',
      message: /NSM offline/,
    })
    const key = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey
    const api = createEnclaveApiServer({ port: 0, encryptionKey: key }, { nsm })
    const port = await api.listen()
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/random`)
      expect(res.status).toBe(502)
      expect(await res.json()).toMatchObject({ code: 'ENCLAVE_API_NSM_FAILED' })
      await expect(api.listen()).rejects.toMatchObject({ code: 'ENCLAVE_API_INVALID_OPTION' })
    } finally {
      await api.close()
    }
  })
})
