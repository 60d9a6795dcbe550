import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { encode } from 'cborg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createPemSigner,
  EifCrcMismatchError,
  EifError,
  type EifErrorCode,
  type EifWriteResult,
  openEif,
  readEif,
  writeEif,
} from '../src/index.js'
import { makeKeyAndCert, sampleSections } from './helpers.js'

const OFFSETS = 0x1c
const SIZES = 0x11c

let tmp: { path: string; remove: () => void }
let good: Buffer
let layout: EifWriteResult
let signed: Buffer
let signedLayout: EifWriteResult

beforeAll(async () => {
  tmp = makeTempDir('eif-corrupt-')
  const path = join(tmp.path, 'good.eif')
  layout = await writeEif(path, sampleSections())
  good = readFileSync(path)
  const { keyPem, certPem } = makeKeyAndCert(tmp.path, 'P-256')
  const signedPath = join(tmp.path, 'signed.eif')
  signedLayout = await writeEif(signedPath, {
    ...sampleSections(),
    signer: createPemSigner({ privateKey: keyPem, certificate: certPem }),
  })
  signed = readFileSync(signedPath)
})
afterAll(() => tmp.remove())

function mutate(base: Buffer, change: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(base)
  change(copy)
  return copy
}

async function expectCode(
  bytes: Buffer,
  code: EifErrorCode,
  where: { offset?: number; sectionIndex?: number } = {},
  message?: RegExp,
) {
  const err = await openEif(bytes).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, `expected ${code}`).toBeInstanceOf(EifError)
  expect((err as EifError).code).toBe(code)
  if (where.offset !== undefined) expect((err as EifError).offset).toBe(where.offset)
  if (where.sectionIndex !== undefined) expect((err as EifError).sectionIndex).toBe(where.sectionIndex)
  if (message !== undefined) expect((err as Error).message).toMatch(message)
}

const sec = (i: number) => layout.sections[i]!

describe('header corruption', () => {
  it('empty and short files are truncated; short garbage is not an EIF', async () => {
    await expectCode(Buffer.alloc(0), 'ENCLAVE_EIF_TRUNCATED', { offset: 0 })
    await expectCode(good.subarray(0, 100), 'ENCLAVE_EIF_TRUNCATED', { offset: 100 }, /548/)
    await expectCode(Buffer.from('hello world'), 'ENCLAVE_EIF_BAD_MAGIC')
  })

  it('wrong magic', async () => {
    await expectCode(
      mutate(good, (b) => b.write('.elf', 0, 'latin1')),
      'ENCLAVE_EIF_BAD_MAGIC',
      { offset: 0 },
    )
  })

  it('unsupported versions (0, 1, 5)', async () => {
    for (const v of [0, 1, 5]) {
      await expectCode(
        mutate(good, (b) => b.writeUInt16BE(v, 4)),
        'ENCLAVE_EIF_UNSUPPORTED_VERSION',
        { offset: 4 },
        new RegExp(`version ${v}`),
      )
    }
  })

  it('reserved flag bits, reserved and unused fields', async () => {
    await expectCode(
      mutate(good, (b) => b.writeUInt16BE(2, 6)),
      'ENCLAVE_EIF_BAD_HEADER',
      { offset: 6 },
    )
    await expectCode(
      mutate(good, (b) => b.writeUInt16BE(1, 0x18)),
      'ENCLAVE_EIF_BAD_HEADER',
      { offset: 0x18 },
    )
    await expectCode(
      mutate(good, (b) => b.writeUInt32BE(1, 0x21c)),
      'ENCLAVE_EIF_BAD_HEADER',
      { offset: 0x21c },
    )
  })

  it('section counts out of range', async () => {
    for (const n of [0, 3, 33, 0xffff]) {
      await expectCode(
        mutate(good, (b) => b.writeUInt16BE(n, 0x1a)),
        'ENCLAVE_EIF_BAD_SECTION_COUNT',
        {
          offset: 0x1a,
        },
      )
    }
  })

  it('a count smaller than the table: the extra entry is named', async () => {
    await expectCode(
      mutate(good, (b) => b.writeUInt16BE(4, 0x1a)),
      'ENCLAVE_EIF_BAD_SECTION_TABLE',
      {
        sectionIndex: 4,
      },
    )
  })

  it('a count larger than the table: the missing entry reads as offset 0, an overlap', async () => {
    await expectCode(
      mutate(good, (b) => b.writeUInt16BE(6, 0x1a)),
      'ENCLAVE_EIF_SECTION_OVERLAP',
      {
        sectionIndex: 5,
      },
    )
  })
})

describe('section table corruption', () => {
  it('a section starting inside the previous one is an overlap', async () => {
    await expectCode(
      mutate(good, (b) => b.writeBigUInt64BE(BigInt(sec(1).offset - 1), OFFSETS + 8)),
      'ENCLAVE_EIF_SECTION_OVERLAP',
      { sectionIndex: 1 },
      /overlap/,
    )
    await expectCode(
      mutate(good, (b) => b.writeBigUInt64BE(10n, OFFSETS)),
      'ENCLAVE_EIF_SECTION_OVERLAP',
      { sectionIndex: 0 },
      /inside the 548-byte header/,
    )
  })

  it('a gap between sections', async () => {
    await expectCode(
      mutate(good, (b) => b.writeBigUInt64BE(BigInt(sec(2).offset + 1), OFFSETS + 16)),
      'ENCLAVE_EIF_BAD_SECTION_TABLE',
      { sectionIndex: 2 },
      /contiguous/,
    )
  })

  it('a size that runs past the end of the file', async () => {
    await expectCode(
      mutate(good, (b) => b.writeBigUInt64BE(10n ** 12n, SIZES + 8 * 4)),
      'ENCLAVE_EIF_TRUNCATED',
      { sectionIndex: 4 },
    )
  })

  it('offsets or sizes beyond 2^53 are refused before any arithmetic', async () => {
    await expectCode(
      mutate(good, (b) => b.writeBigUInt64BE(2n ** 64n - 1n, SIZES)),
      'ENCLAVE_EIF_BAD_SECTION_TABLE',
      { sectionIndex: 0 },
    )
  })

  it('a truncated file names the section that is cut', async () => {
    await expectCode(good.subarray(0, good.length - 10), 'ENCLAVE_EIF_TRUNCATED', { sectionIndex: 4 })
    await expectCode(good.subarray(0, sec(2).offset + 5), 'ENCLAVE_EIF_TRUNCATED', { sectionIndex: 2 })
  })

  it('bytes after the last section', async () => {
    await expectCode(Buffer.concat([good, Buffer.from([0])]), 'ENCLAVE_EIF_TRAILING_DATA', {
      offset: good.length,
    })
  })
})

describe('section header corruption', () => {
  it('an invalid section type (0, 6, 0xffff)', async () => {
    for (const t of [0, 6, 0xffff]) {
      await expectCode(
        mutate(good, (b) => b.writeUInt16BE(t, sec(3).offset)),
        'ENCLAVE_EIF_BAD_SECTION_HEADER',
        { offset: sec(3).offset, sectionIndex: 3 },
      )
    }
  })

  it('non-zero section flags', async () => {
    await expectCode(
      mutate(good, (b) => b.writeUInt16BE(1, sec(1).offset + 2)),
      'ENCLAVE_EIF_BAD_SECTION_HEADER',
      { offset: sec(1).offset + 2, sectionIndex: 1 },
    )
  })

  it("a section header size that disagrees with the header's table", async () => {
    await expectCode(
      mutate(good, (b) => b.writeBigUInt64BE(BigInt(sec(0).size + 1), sec(0).offset + 4)),
      'ENCLAVE_EIF_BAD_SECTION_HEADER',
      { offset: sec(0).offset + 4, sectionIndex: 0 },
      /table says/,
    )
  })

  it('sections out of order or duplicated', async () => {
    // cmdline first, kernel second
    await expectCode(
      mutate(good, (b) => {
        b.writeUInt16BE(2, sec(0).offset)
        b.writeUInt16BE(1, sec(1).offset)
      }),
      'ENCLAVE_EIF_BAD_SECTION_ORDER',
      { sectionIndex: 0 },
    )
    // a ramdisk where the metadata belongs (v4)
    await expectCode(
      mutate(good, (b) => b.writeUInt16BE(3, sec(2).offset)),
      'ENCLAVE_EIF_BAD_SECTION_ORDER',
      {
        sectionIndex: 2,
      },
    )
    // a second kernel after the ramdisks
    await expectCode(
      mutate(good, (b) => b.writeUInt16BE(1, sec(4).offset)),
      'ENCLAVE_EIF_BAD_SECTION_ORDER',
      {
        sectionIndex: 4,
      },
    )
    // version 3 has no metadata section
    await expectCode(
      mutate(good, (b) => b.writeUInt16BE(3, 4)),
      'ENCLAVE_EIF_BAD_SECTION_ORDER',
      {
        sectionIndex: 2,
      },
    )
  })
})

describe('content corruption', () => {
  it('metadata that is not JSON', async () => {
    await expectCode(
      mutate(good, (b) => b.write('#', sec(2).offset + 12, 'latin1')),
      'ENCLAVE_EIF_BAD_METADATA',
      { sectionIndex: 2 },
    )
  })

  it('metadata JSON without the required fields', async () => {
    const path = join(tmp.path, 'meta.eif')
    await writeEif(path, sampleSections())
    const bytes = readFileSync(path)
    const start = sec(2).offset + 12
    const text = bytes.subarray(start, start + sec(2).size).toString()
    const broken = text.replace('"ImageName"', '"ImageNamX"')
    await expectCode(
      mutate(bytes, (b) => b.write(broken, start)),
      'ENCLAVE_EIF_BAD_METADATA',
      { sectionIndex: 2 },
      /ImageName/,
    )
  })

  it('a flipped data byte is a CRC mismatch with both values', async () => {
    const bytes = mutate(good, (b) => {
      b[sec(3).offset + 12 + 3]! ^= 0x40
    })
    const err = await readEif(bytes).catch((e) => e)
    expect(err).toBeInstanceOf(EifCrcMismatchError)
    expect(err.code).toBe('ENCLAVE_EIF_CRC_MISMATCH')
    expect(err.expected).toBe(layout.crc32)
    expect(err.actual).not.toBe(layout.crc32)
    expect(err.offset).toBe(0x220)
    // checkCrc: false measures anyway.
    expect((await readEif(bytes, { checkCrc: false })).crc.ok).toBe(false)
  })

  it('a flipped CRC field is a CRC mismatch', async () => {
    const err = await readEif(mutate(good, (b) => (b[0x223]! ^= 1))).catch((e) => e)
    expect(err).toBeInstanceOf(EifCrcMismatchError)
  })

  it('every single-bit flip of the header and section headers is caught', async () => {
    const positions = [
      ...Array.from({ length: 548 }, (_, i) => i),
      ...layout.sections.flatMap((s) => Array.from({ length: 12 }, (_, i) => s.offset + i)),
    ]
    for (const pos of positions) {
      const bytes = mutate(good, (b) => (b[pos]! ^= 0x01))
      const err = await readEif(bytes).catch((e: unknown) => e)
      expect(err, `flip at ${pos}`).toBeInstanceOf(EifError)
    }
  })

  it('a signature section that is not CBOR, or holds a bad certificate', async () => {
    const sig = signedLayout.sections.at(-1)!
    const dataAt = sig.offset + 12
    await expectCode(
      mutate(signed, (b) => b.fill(0xff, dataAt, dataAt + 4)),
      'ENCLAVE_EIF_BAD_SIGNATURE_SECTION',
      { sectionIndex: sig.index },
    )
    // Valid CBOR of the right shape, but the certificate bytes are garbage.
    const fake = Buffer.from(
      encode([
        new Map<string, unknown>([
          ['signing_certificate', [1, 2, 3]],
          ['signature', [4]],
        ]),
      ]),
    )
    const bytes = Buffer.concat([signed.subarray(0, dataAt), fake])
    bytes.writeBigUInt64BE(BigInt(fake.length), SIZES + 8 * sig.index)
    bytes.writeBigUInt64BE(BigInt(fake.length), sig.offset + 4)
    await expectCode(bytes, 'ENCLAVE_EIF_BAD_CERTIFICATE', { sectionIndex: sig.index })
  })

  it('a signature section over 32 KiB', async () => {
    const sig = signedLayout.sections.at(-1)!
    const big = Buffer.alloc(40_000)
    const bytes = Buffer.concat([signed.subarray(0, sig.offset + 12), big])
    bytes.writeBigUInt64BE(BigInt(big.length), SIZES + 8 * sig.index)
    bytes.writeBigUInt64BE(BigInt(big.length), sig.offset + 4)
    await expectCode(bytes, 'ENCLAVE_EIF_BAD_SIGNATURE_SECTION', { sectionIndex: sig.index }, /32768/)
  })

  it('reports a missing file as an I/O error', async () => {
    const err = await openEif(join(tmp.path, 'nope.eif')).catch((e) => e)
    expect(err.code).toBe('ENCLAVE_EIF_IO')
    expect(err.cause.code).toBe('ENOENT')
  })
})
