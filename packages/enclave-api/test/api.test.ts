import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
} from 'node:crypto'
import { createAttestationVerifier, createDevNsm, type DevNsm } from '@enclave/attestation'
import { makeTempDir } from '@enclave/test-helpers'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEnclaveApiServer, type EnclaveApiServer } from '../src/index.js'

const PCRS = { 0: 'aa'.repeat(48), 1: 'bb'.repeat(48), 2: 'cc'.repeat(48) }

let dir: ReturnType<typeof makeTempDir>
let nsm: DevNsm
let api: EnclaveApiServer
let base: string

beforeAll(async () => {
  dir = makeTempDir('enclave-api-')
  nsm = await createDevNsm({ dir: dir.path, pcrs: PCRS })
  api = createEnclaveApiServer({ port: 0 }, { nsm })
  await api.listen()
  base = `http://127.0.0.1:${api.port}`
})

afterAll(async () => {
  await api?.close()
  await nsm?.close()
  dir?.remove()
})

const post = (path: string, body: unknown) =>
  fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })

async function expectError(res: Response, status: number, code: string, message?: RegExp): Promise<void> {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toBe('application/json')
  const json = (await res.json()) as { code: string; message: string }
  expect(json.code).toBe(code)
  if (message) expect(json.message).toMatch(message)
}

/** The client half of the scheme, written from the specification, independent of src/. */
class Client {
  readonly ecdh = createECDH('secp384r1')
  constructor() {
    this.ecdh.generateKeys()
  }
  get spkiHex(): string {
    const point = this.ecdh.getPublicKey()
    // SPKI DER prefix for an uncompressed P-384 point.
    return `3076301006072a8648ce3d020106052b81040022036200${point.toString('hex')}`
  }
  key(enclavePoint: Buffer, nonce: Buffer): Buffer {
    const shared = this.ecdh.computeSecret(enclavePoint)
    const salt = Buffer.concat([...[this.ecdh.getPublicKey(), enclavePoint].sort(Buffer.compare), nonce])
    return Buffer.from(hkdfSync('sha256', shared, salt, 'enclaver-ecdh-aes256gcm-v1', 32))
  }
  seal(enclavePoint: Buffer, nonce: Buffer, plaintext: string): string {
    const cipher = createCipheriv('aes-256-gcm', this.key(enclavePoint, nonce), nonce)
    return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]).toString('hex')
  }
  open(enclavePoint: Buffer, nonce: Buffer, hex: string): string {
    const data = Buffer.from(hex, 'hex')
    const decipher = createDecipheriv('aes-256-gcm', this.key(enclavePoint, nonce), nonce)
    decipher.setAuthTag(data.subarray(-16))
    return Buffer.concat([decipher.update(data.subarray(0, -16)), decipher.final()]).toString()
  }
}

async function enclavePoint(): Promise<Buffer> {
  const res = await fetch(`${base}/v1/encryption/public_key`)
  const json = (await res.json()) as { public_key_der: string; public_key_pem: string }
  expect(json.public_key_pem).toMatch(/BEGIN PUBLIC KEY/)
  const der = Buffer.from(json.public_key_der.slice(2), 'hex')
  return der.subarray(der.length - 97)
}

describe('POST /v1/attestation', () => {
  const verifier = () => createAttestationVerifier({ roots: [nsm.rootCertificatePem], pcrs: PCRS })

  it('returns a CBOR document carrying the nonce, user_data and public_key given', async () => {
    const nonce = randomBytes(32)
    const userData = Buffer.from('hello enclave')
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const res = await post('/v1/attestation', {
      nonce: nonce.toString('base64'),
      user_data: userData.toString('base64'),
      public_key: publicKey.export({ format: 'pem', type: 'spki' }),
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/cbor')
    const document = verifier().assert(new Uint8Array(await res.arrayBuffer()), {
      nonce,
      userData,
      publicKey: publicKey.export({ format: 'der', type: 'spki' }),
    })
    expect(document.moduleId).toBe(nsm.moduleId)
  })

  it('binds the encryption key by default and takes a JSON object as user_data', async () => {
    const res = await post('/v1/attestation', { user_data: { app: 'x', n: 1 } })
    expect(res.status).toBe(200)
    const document = verifier().assert(new Uint8Array(await res.arrayBuffer()), {
      nonce: null,
      userData: Buffer.from('{"app":"x","n":1}'),
      publicKey: api.encryptionPublicKey,
    })
    expect(document.publicKey?.length).toBe(120)
  })

  it('refuses fields beyond the NSM limit, bad base64, bad PEM and bad JSON with 400 and a code', async () => {
    await expectError(
      await post('/v1/attestation', { nonce: randomBytes(1025).toString('base64') }),
      400,
      'ENCLAVE_API_BAD_REQUEST',
      /1024/,
    )
    await expectError(
      await post('/v1/attestation', { nonce: 'not base64!' }),
      400,
      'ENCLAVE_API_BAD_REQUEST',
      /base64/,
    )
    await expectError(
      await post('/v1/attestation', { public_key: 'nope' }),
      400,
      'ENCLAVE_API_BAD_REQUEST',
      /PEM/,
    )
    await expectError(await post('/v1/attestation', '{"nonce":'), 400, 'ENCLAVE_API_BAD_REQUEST', /not JSON/)
    await expectError(await post('/v1/attestation', [1, 2]), 400, 'ENCLAVE_API_BAD_REQUEST', /JSON object/)
  })
})

describe('routing and limits', () => {
  it('answers 404 and 405 with codes', async () => {
    await expectError(await fetch(`${base}/v2/nothing`), 404, 'ENCLAVE_API_NOT_FOUND')
    const res = await fetch(`${base}/v1/attestation`)
    expect(res.headers.get('allow')).toBe('POST')
    await expectError(res, 405, 'ENCLAVE_API_METHOD_NOT_ALLOWED')
  })

  it('answers 413 for a body beyond maxBodyBytes and stays up', async () => {
    await expectError(
      await post('/v1/attestation', 'x'.repeat(1024 * 1024 + 10)),
      413,
      'ENCLAVE_API_BODY_TOO_LARGE',
    )
    expect((await fetch(`${base}/v1/random`)).status).toBe(200)
  })
})

describe('GET /v1/random', () => {
  it('returns 32 NSM bytes by default, up to 256 on request', async () => {
    const a = (await (await fetch(`${base}/v1/random`)).json()) as { random_bytes: string }
    const b = (await (await fetch(`${base}/v1/random`)).json()) as { random_bytes: string }
    expect(a.random_bytes).toMatch(/^0x[0-9a-f]{64}$/)
    expect(a.random_bytes).not.toBe(b.random_bytes)
    const c = (await (await fetch(`${base}/v1/random?bytes=256`)).json()) as { random_bytes: string }
    expect(c.random_bytes.length).toBe(2 + 512)
    await expectError(await fetch(`${base}/v1/random?bytes=0`), 400, 'ENCLAVE_API_BAD_REQUEST', /1\.\.256/)
    await expectError(await fetch(`${base}/v1/random?bytes=257`), 400, 'ENCLAVE_API_BAD_REQUEST')
  })
})

describe('GET /v1/random with an NSM that answers few bytes per call', () => {
  it('regression: collects exactly the bytes asked for across several GetRandom calls', async () => {
    let next = 0
    let calls = 0
    let perCall = 5
    // Numbered bytes, so the answer shows every chunk was used once and in order.
    const stingy = {
      getAttestationDocument: (request: Parameters<DevNsm['getAttestationDocument']>[0]) =>
        nsm.getAttestationDocument(request),
      getRandom: async () => {
        calls++
        return Uint8Array.from({ length: perCall }, () => next++ % 256)
      },
    }
    const small = createEnclaveApiServer({ port: 0 }, { nsm: stingy })
    const port = await small.listen()
    try {
      const keyCalls = calls
      expect(keyCalls).toBe(Math.ceil(48 / 5)) // the key seed is 48 whole bytes too
      const start = next
      const res = await fetch(`http://127.0.0.1:${port}/v1/random?bytes=256`)
      expect(res.status).toBe(200)
      const bytes = Buffer.from(((await res.json()) as { random_bytes: string }).random_bytes.slice(2), 'hex')
      expect(bytes.length).toBe(256)
      expect([...bytes]).toEqual(Array.from({ length: 256 }, (_, i) => (start + i) % 256))
      expect(calls - keyCalls).toBe(Math.ceil(256 / 5))

      const client = new Client()
      const sealed = (await (
        await fetch(`http://127.0.0.1:${port}/v1/encryption/encrypt`, {
          method: 'POST',
          body: JSON.stringify({ plaintext: 'short nsm', client_public_key: client.spkiHex }),
        })
      ).json()) as { encrypted_data: string; enclave_public_key: string; nonce: string }
      expect(sealed.nonce).toMatch(/^[0-9a-f]{24}$/)
      const der = Buffer.from(sealed.enclave_public_key, 'hex')
      expect(
        client.open(der.subarray(der.length - 97), Buffer.from(sealed.nonce, 'hex'), sealed.encrypted_data),
      ).toBe('short nsm')

      perCall = 0
      await expectError(
        await fetch(`http://127.0.0.1:${port}/v1/random?bytes=8`),
        502,
        'ENCLAVE_API_NSM_FAILED',
        /no bytes/,
      )
      perCall = 1
      const one = await fetch(`http://127.0.0.1:${port}/v1/random?bytes=3`)
      expect(((await one.json()) as { random_bytes: string }).random_bytes).toMatch(/^0x[0-9a-f]{6}$/)
    } finally {
      await small.close()
    }
  })
})

describe('/v1/encryption', () => {
  it('decrypts what a client sealed, once: the same (key, nonce) again is a replay', async () => {
    const point = await enclavePoint()
    const client = new Client()
    const nonce = randomBytes(12)
    const body = {
      nonce: `0x${nonce.toString('hex')}`,
      client_public_key: client.spkiHex,
      encrypted_data: client.seal(point, nonce, 'top secret ✓'),
    }
    const res = await post('/v1/encryption/decrypt', body)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ plaintext: 'top secret ✓' })
    await expectError(await post('/v1/encryption/decrypt', body), 400, 'ENCLAVE_API_REPLAYED_NONCE')
    // Another client may use the same nonce: the cache key is (client key, nonce).
    const other = new Client()
    const again = await post('/v1/encryption/decrypt', {
      ...body,
      client_public_key: other.spkiHex,
      encrypted_data: other.seal(point, nonce, 'b'),
    })
    expect(again.status).toBe(200)
  })

  it('accepts a raw 97-byte point and a legacy 32-byte nonce (truncated to 12)', async () => {
    const point = await enclavePoint()
    const client = new Client()
    const nonce = randomBytes(32)
    const res = await post('/v1/encryption/decrypt', {
      nonce: nonce.toString('hex'),
      client_public_key: client.ecdh.getPublicKey().toString('hex'),
      encrypted_data: client.seal(point, nonce.subarray(0, 12), 'legacy'),
    })
    expect(await res.json()).toMatchObject({ plaintext: 'legacy' })
  })

  it('refuses tampered data, a wrong curve and a bad nonce length', async () => {
    const point = await enclavePoint()
    const client = new Client()
    const nonce = randomBytes(12)
    const sealed = Buffer.from(client.seal(point, nonce, 'x'), 'hex')
    sealed[0]! ^= 1
    await expectError(
      await post('/v1/encryption/decrypt', {
        nonce: nonce.toString('hex'),
        client_public_key: client.spkiHex,
        encrypted_data: sealed.toString('hex'),
      }),
      400,
      'ENCLAVE_API_DECRYPT_FAILED',
    )
    // The tampered attempt did not burn the nonce: the genuine message still goes through.
    const genuine = await post('/v1/encryption/decrypt', {
      nonce: nonce.toString('hex'),
      client_public_key: client.spkiHex,
      encrypted_data: client.seal(point, nonce, 'x'),
    })
    expect(genuine.status).toBe(200)
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
      format: 'der',
      type: 'spki',
    })
    await expectError(
      await post('/v1/encryption/decrypt', {
        nonce: nonce.toString('hex'),
        client_public_key: p256.toString('hex'),
        encrypted_data: '00'.repeat(20),
      }),
      400,
      'ENCLAVE_API_BAD_REQUEST',
      /P-384/,
    )
    await expectError(
      await post('/v1/encryption/decrypt', {
        nonce: 'abcd',
        client_public_key: client.spkiHex,
        encrypted_data: '00'.repeat(20),
      }),
      400,
      'ENCLAVE_API_BAD_REQUEST',
      /12 bytes/,
    )
  })

  it('encrypts for a client, and refuses the enclave reply fed back to decrypt (reflection)', async () => {
    const client = new Client()
    const res = await post('/v1/encryption/encrypt', {
      plaintext: 'for you',
      client_public_key: client.spkiHex,
    })
    const json = (await res.json()) as { encrypted_data: string; enclave_public_key: string; nonce: string }
    expect(json.nonce).toMatch(/^[0-9a-f]{24}$/)
    const der = Buffer.from(json.enclave_public_key, 'hex')
    expect(
      client.open(der.subarray(der.length - 97), Buffer.from(json.nonce, 'hex'), json.encrypted_data),
    ).toBe('for you')
    await expectError(
      await post('/v1/encryption/decrypt', {
        nonce: json.nonce,
        client_public_key: client.spkiHex,
        encrypted_data: json.encrypted_data,
      }),
      400,
      'ENCLAVE_API_REPLAYED_NONCE',
    )
  })

  it('keeps only replayCacheSize entries (FIFO)', async () => {
    const small = createEnclaveApiServer({ port: 0, replayCacheSize: 2 }, { nsm })
    const port = await small.listen()
    try {
      const der = Buffer.from(small.encryptionPublicKey)
      const point = der.subarray(der.length - 97)
      const client = new Client()
      const send = (nonce: Buffer) =>
        fetch(`http://127.0.0.1:${port}/v1/encryption/decrypt`, {
          method: 'POST',
          body: JSON.stringify({
            nonce: nonce.toString('hex'),
            client_public_key: client.spkiHex,
            encrypted_data: client.seal(point, nonce, 'm'),
          }),
        })
      const nonces = [randomBytes(12), randomBytes(12), randomBytes(12)]
      for (const n of nonces) expect((await send(n)).status).toBe(200)
      expect((await send(nonces[2]!)).status).toBe(400)
      expect((await send(nonces[0]!)).status).toBe(200) // evicted: the documented bound of the cache
    } finally {
      await small.close()
    }
  })
})

describe('hostile input', () => {
  it('fuzz: arbitrary JSON bodies get 200 or a 4xx JSON code, never a 5xx, and the server stays up', async () => {
    const paths = ['/v1/attestation', '/v1/encryption/decrypt', '/v1/encryption/encrypt']
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), fc.oneof(fc.json(), fc.string()), async (path, body) => {
        const res = await post(path, body)
        expect(res.status).toBeLessThan(500)
        if (res.status !== 200) expect(((await res.json()) as { code: string }).code).toMatch(/^ENCLAVE_API_/)
        else await res.arrayBuffer()
      }),
      { numRuns: 150 },
    )
    expect((await fetch(`${base}/v1/random`)).status).toBe(200)
  })
})
