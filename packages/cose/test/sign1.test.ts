import { generateKeyPairSync, sign as nodeSign, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { decode } from 'cborg'
import { describe, expect, it } from 'vitest'
import {
  COSE_ALGORITHMS,
  CoseBadKeyError,
  CoseBadSignatureError,
  CoseBadSignerOutputError,
  type CoseError,
  CoseInvalidOptionError,
  CoseMalformedError,
  CoseSignerFailedError,
  CoseUnsupportedAlgorithmError,
  checkCoseSign1Signature,
  coseSign1SigStructure,
  decodeCbor,
  decodeCoseSign1,
  derToRawSignature,
  encodeCbor,
  signCoseSign1,
  signCoseSign1With,
  verifyCoseSign1,
} from '../src/index.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url))

const CASES = [
  ['ES256', 'P-256', 'a10126'],
  ['ES384', 'P-384', 'a1013822'],
  ['ES512', 'P-521', 'a1013823'],
] as const

function thrown(fn: () => unknown): CoseError {
  try {
    fn()
  } catch (err) {
    return err as CoseError
  }
  throw new Error('expected a throw')
}

describe('round trips', () => {
  it.each(CASES)(
    '%s with a %s KeyObject: protected {1: alg}, untagged, verifies',
    (alg, curve, protectedHex) => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
      const payload = new TextEncoder().encode(`payload for ${alg}`)
      const signed = signCoseSign1(payload, privateKey)
      expect(signed[0]).toBe(0x84)
      const cose = decodeCoseSign1(signed)
      expect(cose).toMatchObject({ tagged: false, algorithm: alg, algorithmId: COSE_ALGORITHMS[alg].id })
      expect(hex(cose.protectedBytes)).toBe(protectedHex)
      expect(cose.unprotectedHeader.size).toBe(0)
      expect(cose.signature.length).toBe(COSE_ALGORITHMS[alg].signatureLength)
      expect(hex(verifyCoseSign1(signed, publicKey).payload)).toBe(hex(payload))
      // The same key as PEM text, and the private key standing for its public half.
      const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string
      expect(verifyCoseSign1(signed, pem).algorithm).toBe(alg)
      expect(verifyCoseSign1(signed, privateKey).algorithm).toBe(alg)
    },
  )

  it.each(CASES)('%s with an async signer (a KMS stand-in) gives the same structure', async (alg, curve) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
    const payload = new Uint8Array([1, 2, 3, 4])
    let seen: Uint8Array | undefined
    const signed = await signCoseSign1With(payload, alg, async (toBeSigned) => {
      seen = toBeSigned
      // KMS returns DER; the conversion is part of what a KMS signer does.
      const der = nodeSign(COSE_ALGORITHMS[alg].hash, toBeSigned, privateKey)
      return derToRawSignature(der, alg)
    })
    const cose = verifyCoseSign1(signed, publicKey, { algorithms: [alg] })
    expect(hex(seen!)).toBe(hex(coseSign1SigStructure(cose.protectedBytes, payload)))
    expect(hex(cose.protectedBytes)).toBe(
      hex(decodeCoseSign1(signCoseSign1(payload, privateKey)).protectedBytes),
    )
  })

  it('builds the Sig_structure byte for byte: ["Signature1", protected, h"", payload]', () => {
    const sig = coseSign1SigStructure(Buffer.from('a10126', 'hex'), Buffer.from('010203', 'hex'))
    expect(hex(sig)).toBe(
      `84 6a ${Buffer.from('Signature1').toString('hex')} 43 a10126 40 43 010203`.replace(/ /g, ''),
    )
    const aad = coseSign1SigStructure(new Uint8Array(0), new Uint8Array(0), new Uint8Array([9]))
    expect(hex(aad)).toBe(`846a${Buffer.from('Signature1').toString('hex')}40410940`)
  })

  it('carries unprotected header entries in insertion order', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const unprotectedHeader = new Map<unknown, unknown>([
      [4, new Uint8Array([0xaa])],
      [-1, 'z'],
    ])
    const cose = verifyCoseSign1(
      signCoseSign1(new Uint8Array(1), privateKey, { unprotectedHeader }),
      publicKey,
    )
    expect([...cose.unprotectedHeader.keys()]).toEqual([4, -1])
  })
})

describe('tag 18 and untagged', () => {
  it('emits tag 18 on request; both forms verify and report which they were', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const payload = new Uint8Array([5, 6, 7])
    const untagged = signCoseSign1(payload, privateKey)
    const tagged = signCoseSign1(payload, privateKey, { tagged: true })
    expect(tagged[0]).toBe(0xd2)
    expect(verifyCoseSign1(tagged, publicKey).tagged).toBe(true)
    expect(verifyCoseSign1(untagged, publicKey).tagged).toBe(false)
    // Tagging does not change what is signed: the untagged body under a tag still verifies.
    const retagged = Buffer.concat([Buffer.from([0xd2]), untagged])
    expect(verifyCoseSign1(retagged, publicKey).tagged).toBe(true)
  })

  it('rejects other tags, a doubled tag and tag 18 on a non-array', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const body = Buffer.from(signCoseSign1(new Uint8Array(1), privateKey))
    for (const prefix of ['d1', 'c1', 'd8ff', 'd2d2']) {
      const bytes = Buffer.concat([Buffer.from(prefix, 'hex'), body])
      expect(() => decodeCoseSign1(bytes), prefix).toThrow(CoseMalformedError)
    }
    expect(() => decodeCoseSign1(Buffer.from('d240', 'hex'))).toThrow(CoseMalformedError)
  })
})

describe('real NSM attestation documents', () => {
  const documents = [
    ['evervault 2022', fixture('evervault-valid-attestation-doc-bytes')],
    [
      'nostrband 2025',
      Buffer.from(fixture('nostrband-attestation-2025-04-01.b64').toString('utf8').trim(), 'base64'),
    ],
  ] as const

  it.each(documents)('%s verifies (ES384) with the leaf certificate it carries', (_name, bytes) => {
    const cose = decodeCoseSign1(bytes)
    expect(cose.tagged).toBe(false)
    const payload = decode(cose.payload, { useMaps: true }) as Map<string, unknown>
    const leaf = new X509Certificate(payload.get('certificate') as Uint8Array)
    expect(verifyCoseSign1(bytes, leaf, { algorithms: ['ES384'] }).algorithm).toBe('ES384')
    // A change to the last payload byte (inside the signed document) breaks it.
    const copy = new Uint8Array(bytes)
    const at = Buffer.from(bytes).indexOf(Buffer.from(cose.payload)) + cose.payload.length - 1
    copy[at]! ^= 1
    expect(() => verifyCoseSign1(copy, leaf)).toThrow(CoseBadSignatureError)
  })
})

describe('tamper detection', () => {
  it.each(CASES)('%s: flipping any bit of the encoding never verifies', (_alg, curve) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
    const signed = signCoseSign1(new Uint8Array(40).fill(7), privateKey)
    for (let i = 0; i < signed.length; i++) {
      const copy = new Uint8Array(signed)
      copy[i]! ^= 1 << (i % 8)
      const err = thrown(() => verifyCoseSign1(copy, publicKey))
      // Depending on the byte: the structure breaks, the alg changes, or the signature fails.
      expect(
        [CoseMalformedError, CoseUnsupportedAlgorithmError, CoseBadSignatureError].some(
          (C) => err instanceof C,
        ),
        `byte ${i}: ${String(err)}`,
      ).toBe(true)
    }
  })

  it('a different key of the same curve fails with CoseBadSignatureError', () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const b = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const signed = signCoseSign1(new Uint8Array(100), a.privateKey)
    const err = thrown(() => verifyCoseSign1(signed, b.publicKey))
    expect(err).toBeInstanceOf(CoseBadSignatureError)
    expect(err.code).toBe('ENCLAVE_COSE_BAD_SIGNATURE')
    expect(checkCoseSign1Signature(decodeCoseSign1(signed), b.publicKey)).toBe(false)
  })
})

describe('keys, algorithms and signers', () => {
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })

  it('refuses keys that cannot make or check the signature with CoseBadKeyError', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const ed = generateKeyPairSync('ed25519')
    const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
    for (const key of [rsa.privateKey, ed.privateKey, secp256k1.privateKey]) {
      expect(() => signCoseSign1(new Uint8Array(1), key)).toThrow(CoseBadKeyError)
    }
    expect(() => signCoseSign1(new Uint8Array(1), rsa.privateKey)).toThrow(/ECDSA P-256/)
    expect(() => signCoseSign1(new Uint8Array(1), p256.publicKey)).toThrow(/needs a private key/)
    expect(() => signCoseSign1(new Uint8Array(1), 'not a key')).toThrow(CoseBadKeyError)
    expect(() => signCoseSign1(new Uint8Array(1), p256.privateKey, { algorithm: 'ES384' })).toThrow(
      /does not match the key/,
    )
    const signed = signCoseSign1(new Uint8Array(1), p256.privateKey)
    expect(() => verifyCoseSign1(signed, p384.publicKey)).toThrow(CoseBadKeyError)
    expect(() => verifyCoseSign1(signed, 'garbage')).toThrow(CoseBadKeyError)
  })

  it('refuses algorithms the caller does not accept and unknown alg values', () => {
    const signed = signCoseSign1(new Uint8Array(1), p256.privateKey)
    expect(() => verifyCoseSign1(signed, p256.publicKey, { algorithms: ['ES384'] })).toThrow(
      CoseUnsupportedAlgorithmError,
    )
    // Protected header {1: -8} (EdDSA): decodes, but nothing here verifies it.
    const eddsa = Buffer.from('8443a10127a04101420000', 'hex')
    expect(decodeCoseSign1(eddsa)).toMatchObject({ algorithm: undefined, algorithmId: -8 })
    expect(() => verifyCoseSign1(eddsa, p256.publicKey)).toThrow(CoseUnsupportedAlgorithmError)
    expect(() => checkCoseSign1Signature(decodeCoseSign1(eddsa), p256.publicKey)).toThrow(/-8/)
  })

  it('types what a signer does wrong: throws, returns DER, returns nothing', async () => {
    const cause = new Error('KMS down')
    const failed = await signCoseSign1With(new Uint8Array(1), 'ES256', () => Promise.reject(cause)).catch(
      (e) => e,
    )
    expect(failed).toBeInstanceOf(CoseSignerFailedError)
    expect(failed.cause).toBe(cause)
    const der = (tbs: Uint8Array) => nodeSign('sha256', tbs, p256.privateKey)
    await expect(signCoseSign1With(new Uint8Array(1), 'ES256', der)).rejects.toThrow(CoseBadSignerOutputError)
    await expect(signCoseSign1With(new Uint8Array(1), 'ES256', der)).rejects.toThrow(/64-byte raw r‖s/)
    const nothing = (() => undefined) as unknown as () => Uint8Array
    await expect(signCoseSign1With(new Uint8Array(1), 'ES256', nothing)).rejects.toThrow(/returned undefined/)
    await expect(signCoseSign1With(new Uint8Array(1), 'RS256' as 'ES256', der)).rejects.toThrow(
      CoseUnsupportedAlgorithmError,
    )
    await expect(signCoseSign1With('x' as unknown as Uint8Array, 'ES256', der)).rejects.toThrow(
      CoseInvalidOptionError,
    )
  })
})

describe('the CBOR profile', () => {
  it('decodes maps as Map and keeps Map order when encoding', () => {
    const map = new Map<unknown, unknown>([
      ['z', 1],
      [1, -35],
    ])
    expect(hex(encodeCbor(map))).toBe('a2617a01013822')
    expect(decodeCbor(Buffer.from('a2617a01013822', 'hex'), 'x')).toEqual(map)
  })

  it('refuses duplicate keys, undefined, trailing bytes and every tag, naming the input', () => {
    for (const h of ['a201010102', 'f7', '0000', 'd24100', 'c11a00000000']) {
      expect(() => decodeCbor(Buffer.from(h, 'hex'), 'the section'), h).toThrow(
        /^the section is not valid CBOR/,
      )
      expect(() => decodeCbor(Buffer.from(h, 'hex'), 'the section'), h).toThrow(CoseMalformedError)
    }
  })
})
