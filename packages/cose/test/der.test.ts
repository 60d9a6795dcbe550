import { generateKeyPairSync, sign, verify } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  COSE_ALGORITHMS,
  CoseMalformedError,
  CoseUnsupportedAlgorithmError,
  derToRawSignature,
  rawToDerSignature,
} from '../src/index.js'

const KEYS = {
  ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  ES384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  ES512: generateKeyPairSync('ec', { namedCurve: 'P-521' }),
} as const

describe('DER ↔ raw r‖s', () => {
  it.each(Object.keys(KEYS) as (keyof typeof KEYS)[])(
    '%s: node DER → raw verifies as P1363 and converts back byte for byte',
    (alg) => {
      const { privateKey, publicKey } = KEYS[alg]
      const { hash, signatureLength } = COSE_ALGORITHMS[alg]
      // Enough signatures that short r/s (leading zeros) and high-bit r/s (0x00 pad) both occur.
      for (let i = 0; i < 200; i++) {
        const message = Buffer.from(`message ${i}`)
        const der = sign(hash, message, privateKey)
        const raw = derToRawSignature(der, alg)
        expect(raw.length).toBe(signatureLength)
        expect(verify(hash, message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, raw)).toBe(true)
        expect(Buffer.from(rawToDerSignature(raw, alg)).equals(der)).toBe(true)
      }
    },
  )

  it('encodes small and high-bit integers minimally', () => {
    const raw = new Uint8Array(64)
    raw[31] = 1
    raw[32] = 0x80
    expect(Buffer.from(rawToDerSignature(raw, 'ES256')).toString('hex')).toBe(
      `3026020101022100${'80'}${'00'.repeat(31)}`,
    )
    expect(Buffer.from(derToRawSignature(rawToDerSignature(raw, 'ES256'), 'ES256')).equals(raw)).toBe(true)
  })

  it('rejects non-strict or oversized DER with CoseMalformedError', () => {
    const cases = [
      '',
      '31060201010201 01',
      '3006020101020101ff', // trailing byte
      '300702010102010100', // length mismatch
      '3006020100020101'.slice(0, 12), // truncated
      '30060201ff020101', // negative r
      '3007020200010201 01', // non-minimal leading zero
      '3080020101020101 0000', // indefinite length
      '308106020101020101', // long form where short fits
      '3005020101020001'.replace('020001', '0200'), // empty s
      `3024020101021f${'01'.repeat(31)}`.slice(0, 10),
      `3026020101022101${'00'.repeat(32)}`, // s of 33 bytes for ES256
      '3006040101020101', // r is an OCTET STRING
    ]
    for (const h of cases) {
      expect(() => derToRawSignature(Buffer.from(h.replace(/ /g, ''), 'hex'), 'ES256'), h).toThrow(
        CoseMalformedError,
      )
    }
    expect(() => rawToDerSignature(new Uint8Array(63), 'ES256')).toThrow(CoseMalformedError)
    expect(() => derToRawSignature(new Uint8Array(8), 'PS256' as 'ES256')).toThrow(
      CoseUnsupportedAlgorithmError,
    )
  })

  it('random bytes (fast-check) convert or fail typed, and what converts round-trips', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 160 }),
        fc.constantFrom('ES256', 'ES384', 'ES512'),
        (bytes, alg) => {
          let raw: Uint8Array
          try {
            raw = derToRawSignature(bytes, alg as 'ES256')
          } catch (err) {
            expect(err).toBeInstanceOf(CoseMalformedError)
            return
          }
          expect(Buffer.from(rawToDerSignature(raw, alg as 'ES256')).equals(Buffer.from(bytes))).toBe(true)
        },
      ),
      { numRuns: 3000 },
    )
  })
})
