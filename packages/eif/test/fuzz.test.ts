import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPemSigner, EifError, readEif, writeEif } from '../src/index.js'
import { parseMetadata } from '../src/metadata.js'
import { decodeSignatureSection } from '../src/signing.js'
import { makeKeyAndCert, sampleSections } from './helpers.js'

let tmp: { path: string; remove: () => void }
let good: Buffer
let signatureSection: Buffer

beforeAll(async () => {
  tmp = makeTempDir('eif-fuzz-')
  const { keyPem, certPem } = makeKeyAndCert(tmp.path, 'P-384')
  const path = join(tmp.path, 'seed.eif')
  const r = await writeEif(path, {
    ...sampleSections(),
    signer: createPemSigner({ privateKey: keyPem, certificate: certPem }),
  })
  good = readFileSync(path)
  const sig = r.sections.at(-1)!
  signatureSection = good.subarray(sig.offset + 12, sig.offset + 12 + sig.size)
})
afterAll(() => tmp.remove())

/** Reading must either succeed or fail with a typed EifError: never a TypeError, RangeError or hang. */
async function onlyTypedErrors(bytes: Uint8Array): Promise<void> {
  try {
    await readEif(bytes)
  } catch (err) {
    if (!(err instanceof EifError)) throw err
    expect(err.code).toMatch(/^ENCLAVE_EIF_/)
  }
}

const header = () =>
  fc.record({
    version: fc.constantFrom(0, 1, 2, 3, 4, 5, 0xffff),
    flags: fc.constantFrom(0, 1, 2, 0x8000),
    count: fc.integer({ min: 0, max: 40 }),
    offsets: fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { minLength: 32, maxLength: 32 }),
    sizes: fc.array(
      fc.oneof(fc.bigInt({ min: 0n, max: 4096n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
      { minLength: 32, maxLength: 32 },
    ),
    tail: fc.uint8Array({ maxLength: 2048 }),
  })

describe('reader fuzzing (fast-check)', () => {
  it('random bytes', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), onlyTypedErrors), { numRuns: 300 })
  })

  it('random headers with random section tables (including 2^64 sizes) over small files', async () => {
    await fc.assert(
      fc.asyncProperty(header(), async (h) => {
        const buf = Buffer.alloc(548)
        buf.write('.eif', 0, 'latin1')
        buf.writeUInt16BE(h.version, 4)
        buf.writeUInt16BE(h.flags, 6)
        buf.writeUInt16BE(h.count, 0x1a)
        for (let i = 0; i < 32; i++) {
          // Mostly plausible: contiguous offsets, sometimes arbitrary.
          buf.writeBigUInt64BE(i < h.count && h.offsets[i]! % 3n === 0n ? 548n : h.offsets[i]!, 0x1c + 8 * i)
          buf.writeBigUInt64BE(h.sizes[i]!, 0x11c + 8 * i)
        }
        const before = process.memoryUsage().arrayBuffers
        await onlyTypedErrors(Buffer.concat([buf, h.tail]))
        // No allocation sized from the header: growth stays far below any claimed size.
        expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024)
      }),
      { numRuns: 400 },
    )
  })

  it('a valid signed EIF with random byte mutations, truncation or extension', async () => {
    const mutation = fc.record({
      edits: fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      }),
      // Bias edits toward the header and section headers, where structure lives.
      inHeader: fc.boolean(),
      cut: fc.option(fc.nat({ max: good.length }), { nil: undefined }),
      extra: fc.uint8Array({ maxLength: 16 }),
    })
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        let bytes = Buffer.from(good)
        for (const [pos, value] of m.edits) bytes[m.inHeader ? pos % 600 : pos] = value
        if (m.cut !== undefined) bytes = bytes.subarray(0, m.cut)
        bytes = Buffer.concat([bytes, m.extra])
        await onlyTypedErrors(bytes)
      }),
      { numRuns: 400 },
    )
  })

  it('signature section decoder on random and mutated CBOR', () => {
    const check = (bytes: Uint8Array) => {
      try {
        decodeSignatureSection(bytes)
      } catch (err) {
        if (!(err instanceof EifError)) throw err
      }
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), check), { numRuns: 300 })
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: signatureSection.length - 1 }), fc.integer({ min: 0, max: 255 })), {
          maxLength: 6,
        }),
        (edits) => {
          const bytes = Buffer.from(signatureSection)
          for (const [pos, value] of edits) bytes[pos] = value
          check(bytes)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('deeply nested CBOR in the signature section is a typed error, not a stack overflow', () => {
    const nested = Buffer.alloc(32_000, 0x81) // [[[[…]]]]
    expect(() => decodeSignatureSection(nested)).toThrow(EifError)
    const nestedMaps = Buffer.concat([Buffer.from([0x81]), Buffer.alloc(20_000, 0xbf)])
    expect(() => decodeSignatureSection(nestedMaps)).toThrow(EifError)
  })

  it('metadata parser on arbitrary JSON values and strings', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        try {
          parseMetadata(Buffer.from(text))
        } catch (err) {
          if (!(err instanceof EifError)) throw err
        }
      }),
      { numRuns: 300 },
    )
  })
})
