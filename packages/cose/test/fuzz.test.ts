import { generateKeyPairSync } from 'node:crypto'
import { encode } from 'cborg'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CoseError,
  CoseMalformedError,
  decodeCoseSign1,
  signCoseSign1,
  verifyCoseSign1,
} from '../src/index.js'

// Fixed seed so a failure reproduces; fast-check prints the counterexample.
const SEED = 0x5eed_c05e

function decodeOnlyTyped(bytes: Uint8Array): void {
  try {
    decodeCoseSign1(bytes)
  } catch (err) {
    expect(err).toBeInstanceOf(CoseMalformedError)
  }
}

describe('decoder fuzzing: only typed errors', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  const valid = signCoseSign1(new Uint8Array(64).fill(3), privateKey)
  const validTagged = signCoseSign1(new Uint8Array(64).fill(3), privateKey, { tagged: true })

  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), decodeOnlyTyped), { numRuns: 5000, seed: SEED })
  })

  it('mutations of a valid document decode or fail typed, and never verify', () => {
    const mutation = fc.record({
      base: fc.constantFrom(valid, validTagged),
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
    })
    fc.assert(
      fc.property(mutation, ({ base, edits, cut }) => {
        let bytes = new Uint8Array(base)
        for (const [at, xor] of edits) bytes[at % bytes.length]! ^= xor
        if (cut !== undefined) bytes = bytes.subarray(0, cut % bytes.length)
        decodeOnlyTyped(bytes)
        // Two edits of one byte can cancel out; any real change must not verify.
        if (Buffer.from(bytes).equals(base)) return
        expect(() => verifyCoseSign1(bytes, publicKey)).toThrow(CoseError)
      }),
      { numRuns: 1500, seed: SEED },
    )
  })

  it('structure-aware CBOR values', () => {
    const headerish = fc.oneof(
      fc.anything({ withMap: true, withTypedArray: false, withNullPrototype: false }),
      fc.uint8Array({ maxLength: 16 }),
    )
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything({ withMap: true, withBigInt: true, withTypedArray: false, withNullPrototype: false }),
          fc.tuple(headerish, headerish, fc.uint8Array({ maxLength: 64 }), headerish),
          fc.tuple(
            fc.constantFrom(Uint8Array.of(0xa1, 0x01, 0x38, 0x22), Uint8Array.of(0xa0), Uint8Array.of(0x40)),
            headerish,
            headerish,
            fc.uint8Array({ maxLength: 96 }),
          ),
        ),
        (value) => {
          let bytes: Uint8Array
          try {
            bytes = encode(value, { mapSorter: () => 0 })
          } catch {
            return // not representable in CBOR (undefined, symbols...)
          }
          decodeOnlyTyped(bytes)
          decodeOnlyTyped(Uint8Array.of(0xd2, ...bytes))
        },
      ),
      { numRuns: 3000, seed: SEED },
    )
  })

  it('deep nesting and huge declared lengths fail fast and typed', () => {
    const deep = new Uint8Array(100_000).fill(0x81)
    expect(() => decodeCoseSign1(deep)).toThrow(CoseMalformedError)
    for (const h of [
      '9bffffffffffffffff',
      '5bffffffffffffffff',
      'bb00000000ffffffff',
      '9f'.repeat(5000),
      'd2'.repeat(5000),
    ]) {
      expect(() => decodeCoseSign1(Buffer.from(h, 'hex')), h.slice(0, 20)).toThrow(CoseMalformedError)
    }
    expect(() => decodeCoseSign1('84' as unknown as Uint8Array)).toThrow(CoseMalformedError)
  })
})
