import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  CoseSignatureError,
  coseSign1SigStructure,
  decodeCoseSign1,
  MalformedError,
  signCoseSign1,
  signCoseSign1With,
  toHex,
  UnsupportedAlgorithmError,
  verifyCoseSign1,
} from '../src/index.js'
import { VECTORS } from './vectors.js'

const curves = [
  ['P-256', 'ES256', 'a10126'],
  ['P-384', 'ES384', 'a1013822'],
  ['P-521', 'ES512', 'a1013823'],
] as const

describe('COSE_Sign1 sign and verify', () => {
  it.each(curves)('%s signs %s with protected header {1: alg} and verifies', (curve, alg, protectedHex) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
    const payload = new TextEncoder().encode('{"register_index":0}')
    const signed = signCoseSign1(payload, privateKey)
    const cose = decodeCoseSign1(signed)
    expect(cose.algorithm).toBe(alg)
    expect(toHex(cose.protectedBytes)).toBe(protectedHex)
    expect(cose.unprotectedHeader.size).toBe(0)
    expect(cose.tagged).toBe(false)
    expect(signed[0]).toBe(0x84)
    expect(toHex(verifyCoseSign1(signed, publicKey).payload)).toBe(toHex(payload))
    // PEM keys work too
    expect(
      verifyCoseSign1(signed, publicKey.export({ type: 'spki', format: 'pem' }) as string).algorithm,
    ).toBe(alg)
  })

  it('emits tag 18 on request and verifies the tagged form', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const signed = signCoseSign1(new Uint8Array([1, 2, 3]), privateKey, { tagged: true })
    expect(signed[0]).toBe(0xd2)
    expect(verifyCoseSign1(signed, publicKey).tagged).toBe(true)
  })

  it('rejects a wrong key, a changed payload and a changed signature with CoseSignatureError', () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const b = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const signed = signCoseSign1(new Uint8Array(100).fill(7), a.privateKey)
    expect(() => verifyCoseSign1(signed, b.publicKey)).toThrow(CoseSignatureError)
    for (const i of [12, 40, signed.length - 1, signed.length - 50]) {
      const copy = new Uint8Array(signed)
      copy[i]! ^= 0x10
      expect(() => verifyCoseSign1(copy, a.publicKey)).toThrow(CoseSignatureError)
    }
  })

  it('refuses mismatched or unsupported algorithms with UnsupportedAlgorithmError', () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
    expect(() => signCoseSign1(new Uint8Array(1), p256.privateKey, { algorithm: 'ES384' })).toThrow(
      UnsupportedAlgorithmError,
    )
    expect(() => signCoseSign1(new Uint8Array(1), rsa.privateKey)).toThrow(/ECDSA P-256/)
    const signed = signCoseSign1(new Uint8Array(1), p256.privateKey)
    expect(() => verifyCoseSign1(signed, p384.publicKey)).toThrow(/does not match the key/)
    expect(() => verifyCoseSign1(signed, p256.publicKey, { algorithms: ['ES384'] })).toThrow(/not accepted/)
  })

  it('builds the Sig_structure real documents are signed over', () => {
    const doc = VECTORS[0]!.bytes
    const cose = decodeCoseSign1(doc)
    const sig = coseSign1SigStructure(cose.protectedBytes, cose.payload)
    expect(toHex(sig.subarray(0, 21))).toBe(
      `846a5369676e61747572653144a101382240${'59'}${toHex(doc.subarray(8, 10))}`,
    )
  })

  it('throws MalformedError for structures that are not COSE_Sign1', () => {
    const cases = [
      '80',
      '83404040',
      '84404040f6',
      '84a0a04040',
      '8440a0f640',
      'd1844040a04040',
      'c1844040a04040',
    ]
    for (const hex of cases)
      expect(() => decodeCoseSign1(Buffer.from(hex, 'hex')), hex).toThrow(MalformedError)
  })
})

describe('COSE_Sign1 with an external signer', () => {
  it('builds the same structure from a signer callback (a KMS stand-in using node:crypto)', async () => {
    const { sign } = await import('node:crypto')
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
    const payload = new Uint8Array([1, 2, 3, 4])
    let seen: Uint8Array | undefined
    const signed = await signCoseSign1With(payload, 'ES384', async (toBeSigned) => {
      seen = toBeSigned
      return new Uint8Array(sign('sha384', toBeSigned, { key: privateKey, dsaEncoding: 'ieee-p1363' }))
    })
    const cose = verifyCoseSign1(signed, publicKey)
    expect(toHex(seen!)).toBe(toHex(coseSign1SigStructure(cose.protectedBytes, payload)))
    await expect(signCoseSign1With(payload, 'ES384', () => new Uint8Array(10))).rejects.toThrow(
      UnsupportedAlgorithmError,
    )
  })
})
