import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { makeTempDir } from '@enclave/test-helpers'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  computePcrs,
  createEifWriter,
  describeEif,
  EIF_HEADER_SIZE,
  EifAbortedError,
  EifBadMetadataError,
  EifInvalidOptionsError,
  EifSizeMismatchError,
  EifWriterStateError,
  openEif,
  readEif,
  writeEif,
} from '../src/index.js'
import { PACKAGE_VERSION } from '../src/version.js'
import { sampleSections } from './helpers.js'

let tmp: { path: string; remove: () => void }
beforeEach(() => {
  tmp = makeTempDir('eif-roundtrip-')
})
afterEach(() => tmp.remove())

describe('writeEif / readEif round trip', () => {
  it('writes the nitro-cli layout and reads back the same sections, PCRs and metadata', async () => {
    const s = sampleSections()
    const path = join(tmp.path, 'app.eif')
    const result = await writeEif(path, {
      ...s,
      metadata: { imageName: 'app', imageVersion: 'sha256:abc', customMetadata: { team: 'enclave' } },
    })
    const bytes = readFileSync(path)
    expect(bytes.length).toBe(result.size)
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('.eif')
    expect(bytes.readUInt16BE(4)).toBe(4)
    expect(bytes.readUInt16BE(0x1a)).toBe(5)
    expect(result.sections.map((x) => x.type)).toEqual([
      'kernel',
      'cmdline',
      'metadata',
      'ramdisk',
      'ramdisk',
    ])
    expect(result.sections[0]!.offset).toBe(EIF_HEADER_SIZE)
    // The header table and each 12-byte section header, read raw.
    const types = { kernel: 1, cmdline: 2, ramdisk: 3, signature: 4, metadata: 5 }
    for (let i = 0; i < 32; i++) {
      const sec = result.sections[i]
      expect(bytes.readBigUInt64BE(0x1c + 8 * i)).toBe(BigInt(sec?.offset ?? 0))
      expect(bytes.readBigUInt64BE(0x11c + 8 * i)).toBe(BigInt(sec?.size ?? 0))
      if (sec === undefined) continue
      expect(bytes.readUInt16BE(sec.offset)).toBe(types[sec.type])
      expect(bytes.readUInt16BE(sec.offset + 2)).toBe(0)
      expect(bytes.readBigUInt64BE(sec.offset + 4)).toBe(BigInt(sec.size))
      const next = result.sections[i + 1]?.offset ?? bytes.length
      expect(next).toBe(sec.offset + 12 + sec.size) // no padding
    }
    // Section data is exactly the input, right after each 12-byte header.
    const at = (i: number) =>
      bytes.subarray(
        result.sections[i]!.offset + 12,
        result.sections[i]!.offset + 12 + result.sections[i]!.size,
      )
    expect(at(0).equals(s.kernel)).toBe(true)
    expect(at(1).toString()).toBe(s.cmdline)
    expect(at(3).equals(s.ramdisks[0]!)).toBe(true)
    expect(at(4).equals(s.ramdisks[1]!)).toBe(true)
    expect(JSON.parse(at(2).toString())).toEqual({
      ImageName: 'app',
      ImageVersion: 'sha256:abc',
      BuildMetadata: {
        BuildTime: '1970-01-01T00:00:00.000000+00:00',
        BuildTool: '@enclave/eif',
        BuildToolVersion: PACKAGE_VERSION,
        OperatingSystem: 'Generic Linux',
        KernelVersion: 'Unknown version',
      },
      DockerInfo: null,
      CustomMetadata: { team: 'enclave' },
    })
    // Key order is nitro-cli's.
    expect(
      at(2)
        .toString()
        .startsWith('{"ImageName":"app","ImageVersion":"sha256:abc","BuildMetadata":{"BuildTime"'),
    ).toBe(true)

    const read = await readEif(path)
    expect(read.crc.ok).toBe(true)
    expect(read.crc.computed).toBe(result.crc32)
    expect(read.pcrs).toEqual(result.pcrs)
    expect(read.pcrs).toEqual(computePcrs({ kernel: s.kernel, cmdline: s.cmdline, ramdisks: s.ramdisks }))
    expect(read.header).toMatchObject({ version: 4, arch: 'x86_64', sectionCount: 5, defaultCpus: 2n })
    expect(read.header.defaultMemory).toBe(0x40000000n)
    expect(read.metadata?.ImageName).toBe('app')
    expect(read.signatureCheck).toBeUndefined()
    expect(read.sections).toEqual(result.sections)
  })

  it('stores a CRC that python3 zlib.crc32 computes over every byte but the CRC field', async () => {
    const path = join(tmp.path, 'crc.eif')
    const result = await writeEif(path, sampleSections())
    const py = execFileSync('python3', [
      '-c',
      'import sys,zlib; b=open(sys.argv[1],"rb").read(); print(zlib.crc32(b[:0x220] + b[0x224:]), int.from_bytes(b[0x220:0x224], "big"))',
      path,
    ])
      .toString()
      .trim()
      .split(' ')
      .map(Number)
    expect(py[0]).toBe(result.crc32)
    expect(py[1]).toBe(result.crc32)
  })

  it('measures PCRs as python3 hashlib does (independent SHA-384 and extend)', async () => {
    const s = sampleSections()
    const path = join(tmp.path, 'pcr.eif')
    const result = await writeEif(path, s)
    const dir = tmp.path
    writeFileSync(join(dir, 'k'), s.kernel)
    writeFileSync(join(dir, 'c'), s.cmdline)
    writeFileSync(join(dir, 'r0'), s.ramdisks[0]!)
    writeFileSync(join(dir, 'r1'), s.ramdisks[1]!)
    const script = `
import hashlib, sys, os
d = sys.argv[1]
r = lambda n: open(os.path.join(d, n), 'rb').read()
ext = lambda x: hashlib.sha384(b'\\0' * 48 + hashlib.sha384(x).digest()).hexdigest()
print(ext(r('k') + r('c') + r('r0') + r('r1')), ext(r('k') + r('c') + r('r0')), ext(r('r1')))
`
    const [p0, p1, p2] = execFileSync('python3', ['-c', script, dir]).toString().trim().split(' ')
    expect(result.pcrs).toEqual({ PCR0: p0, PCR1: p1, PCR2: p2 })
  })

  it('is reproducible: the same inputs give byte-identical files', async () => {
    const a = join(tmp.path, 'a.eif')
    const b = join(tmp.path, 'b.eif')
    const opts = { metadata: { imageName: 'x', buildTime: new Date('2024-05-06T07:08:09.123Z') } }
    await writeEif(a, { ...sampleSections(), ...opts })
    await writeEif(b, { ...sampleSections(), ...opts })
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true)
    expect((await readEif(a)).metadata?.BuildMetadata.BuildTime).toBe('2024-05-06T07:08:09.123000+00:00')
  })

  it('streams every source kind: file path, Node Readable, async generator, sized stream', async () => {
    const s = sampleSections()
    const kernelPath = join(tmp.path, 'bzImage')
    writeFileSync(kernelPath, s.kernel)
    async function* pieces(buf: Buffer) {
      for (let i = 0; i < buf.length; i += 7) yield buf.subarray(i, i + 7)
    }
    const path = join(tmp.path, 'stream.eif')
    const result = await writeEif(path, {
      kernel: { path: kernelPath },
      cmdline: Readable.from([Buffer.from(s.cmdline)]),
      ramdisks: [pieces(s.ramdisks[0]!), { stream: pieces(s.ramdisks[1]!), size: s.ramdisks[1]!.length }],
    })
    expect(result.pcrs).toEqual(computePcrs(s))
    expect((await readEif(path)).crc.ok).toBe(true)
  })

  it('sets the aarch64 flag and reads the architecture back', async () => {
    const path = join(tmp.path, 'arm.eif')
    await writeEif(path, { ...sampleSections(), arch: 'aarch64' })
    expect(readFileSync(path).readUInt16BE(6)).toBe(1)
    expect((await readEif(path)).header.arch).toBe('aarch64')
  })

  it('streams section data back out of an open image', async () => {
    const s = sampleSections()
    const path = join(tmp.path, 'sections.eif')
    await writeEif(path, s)
    const image = await openEif(path)
    try {
      const chunks: Buffer[] = []
      for await (const c of image.sectionData(4)) chunks.push(c)
      expect(Buffer.concat(chunks).equals(s.ramdisks[1]!)).toBe(true)
    } finally {
      await image.close()
    }
  })

  it('reads from bytes as well as from a path', async () => {
    const path = join(tmp.path, 'mem.eif')
    const result = await writeEif(path, sampleSections())
    expect((await readEif(readFileSync(path))).pcrs).toEqual(result.pcrs)
  })
})

describe('writer property: any contents, any chunking', () => {
  it('round-trips random sections split into random chunks', { timeout: 120_000 }, async () => {
    const dir = tmp.path
    const chunked = (max: number) =>
      fc.tuple(
        fc.uint8Array({ maxLength: max }),
        fc.array(fc.integer({ min: 1, max: 2 * max + 1 }), { maxLength: 6 }),
      )
    const split = ([data, cuts]: [Uint8Array, number[]]) => {
      async function* gen() {
        let at = 0
        for (const cut of cuts) {
          yield data.subarray(at, at + cut)
          at += cut
        }
        yield data.subarray(at)
      }
      return gen()
    }
    let run = 0
    await fc.assert(
      fc.asyncProperty(
        chunked(4000),
        chunked(200),
        fc.array(chunked(3000), { minLength: 1, maxLength: 4 }),
        // Occasionally a chunk larger than the 1 MiB write batch.
        fc.option(fc.integer({ min: 1024 * 1024, max: 3 * 1024 * 1024 }), { freq: 8, nil: undefined }),
        async (kernel, cmdline, ramdisks, big) => {
          const extra = big === undefined ? [] : [new Uint8Array(big).fill(7)]
          const path = join(dir, `prop-${run++}.eif`)
          const result = await writeEif(path, {
            kernel: split(kernel),
            cmdline: split(cmdline),
            ramdisks: [...ramdisks.map(split), ...extra],
          })
          const read = await readEif(path)
          expect(read.pcrs).toEqual(
            computePcrs({
              kernel: kernel[0],
              cmdline: cmdline[0],
              ramdisks: [...ramdisks.map((r) => r[0]), ...extra],
            }),
          )
          expect(read.pcrs).toEqual(result.pcrs)
          const bytes = readFileSync(path)
          const image = await openEif(bytes)
          const back: Buffer[] = []
          for (const sec of image.sections.filter((x) => x.type === 'ramdisk')) {
            const parts: Buffer[] = []
            for await (const c of image.sectionData(sec.index)) parts.push(c)
            back.push(Buffer.concat(parts))
          }
          expect(back.slice(0, ramdisks.length).map((b) => b.toString('hex'))).toEqual(
            ramdisks.map((r) => Buffer.from(r[0]).toString('hex')),
          )
          rmSync(path)
        },
      ),
      { numRuns: 25 },
    )
  })
})

describe('writer failures leave nothing behind', () => {
  const leftovers = () => readdirSync(tmp.path)

  it('rejects a sized stream that produces a different length, and removes the temp file', async () => {
    const path = join(tmp.path, 'bad.eif')
    await expect(
      writeEif(path, {
        ...sampleSections(),
        ramdisks: [{ stream: Readable.from([Buffer.from('abc')]), size: 4 }],
      }),
    ).rejects.toBeInstanceOf(EifSizeMismatchError)
    expect(leftovers()).toEqual([])
  })

  it('aborts through the signal', async () => {
    const controller = new AbortController()
    async function* slow() {
      yield Buffer.from('a')
      controller.abort(new Error('stop'))
      yield Buffer.from('b')
    }
    const path = join(tmp.path, 'aborted.eif')
    await expect(
      writeEif(path, { ...sampleSections(), ramdisks: [slow()], signal: controller.signal }),
    ).rejects.toBeInstanceOf(EifAbortedError)
    expect(leftovers()).toEqual([])
  })

  it('abort() during a streaming call interrupts it with EifAbortedError', async () => {
    const path = join(tmp.path, 'interrupted.eif')
    const writer = await createEifWriter(path)
    await writer.kernel(Buffer.from('k'))
    await writer.cmdline('c')
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    async function* stalled() {
      yield Buffer.alloc(2 * 1024 * 1024) // a direct write
      await gate
      yield Buffer.alloc(2 * 1024 * 1024)
    }
    const pending = writer.ramdisk(stalled())
    await new Promise((r) => setTimeout(r, 50))
    await writer.abort()
    release()
    await expect(pending).rejects.toBeInstanceOf(EifAbortedError)
    expect(leftovers()).toEqual([])
  })

  it('keeps an existing destination untouched when a write fails', async () => {
    const path = join(tmp.path, 'keep.eif')
    writeFileSync(path, 'previous')
    async function* failing() {
      yield Buffer.from('x')
      throw new Error('source broke')
    }
    await expect(writeEif(path, { ...sampleSections(), ramdisks: [failing()] })).rejects.toThrow(
      /source broke/,
    )
    expect(readFileSync(path, 'utf8')).toBe('previous')
    expect(leftovers()).toEqual(['keep.eif'])
  })

  it('enforces the call order of the incremental writer', async () => {
    const path = join(tmp.path, 'order.eif')
    const writer = await createEifWriter(path)
    await expect(writer.ramdisk(Buffer.from('r'))).rejects.toThrow(/out of order: next is kernel/)
    // A call out of order is refused without side effects: the writer goes on.
    await writer.kernel(Buffer.from('k'))
    const concurrent = [writer.cmdline('c'), writer.cmdline('c')]
    await expect(concurrent[1]).rejects.toThrow(/while another writer call is still running/)
    await concurrent[0]
    await writer.abort()
    await expect(writer.ramdisk(Buffer.from('r'))).rejects.toThrow(/after the writer was aborted/)
    expect(leftovers()).toEqual([])

    const w2 = await createEifWriter(join(tmp.path, 'w2.eif'))
    await w2.kernel(Buffer.from('k'))
    await w2.cmdline('c')
    await expect(w2.finish()).rejects.toBeInstanceOf(EifWriterStateError)
    await w2.abort()
    expect(leftovers()).toEqual([])
  })

  it('rejects bad options with a message naming the option', async () => {
    const path = join(tmp.path, 'opts.eif')
    await expect(writeEif(path, { ...sampleSections(), arch: 'mips' as never })).rejects.toThrow(
      EifInvalidOptionsError,
    )
    await expect(writeEif(path, { ...sampleSections(), ramdisks: [] })).rejects.toThrow(/ramdisks/)
    await expect(writeEif(path, { ...sampleSections(), defaultCpus: -1 })).rejects.toThrow(/defaultCpus/)
    await expect(
      writeEif(path, { ...sampleSections(), metadata: { customMetadata: { big: 'x'.repeat(5000) } } }),
    ).rejects.toBeInstanceOf(EifBadMetadataError)
    await expect(writeEif(path, { ...sampleSections(), kernel: 42 as never })).rejects.toThrow(
      /kernel source/,
    )
    expect(leftovers()).toEqual([])
  })

  it('refuses more ramdisks than 32 sections can hold', async () => {
    const path = join(tmp.path, 'many.eif')
    const ramdisks = Array.from({ length: 30 }, () => Buffer.from('r'))
    await expect(writeEif(path, { ...sampleSections(), ramdisks })).rejects.toThrow(/at most 32 sections/)
    const ok = await writeEif(path, { ...sampleSections(), ramdisks: ramdisks.slice(0, 29) })
    expect(ok.sections).toHaveLength(32)
    expect((await readEif(path)).sections).toHaveLength(32)
  })
})

describe('describeEif', () => {
  it("prints nitro-cli's describe-eif fields in nitro-cli's order for an unsigned image", async () => {
    const path = join(tmp.path, 'd.eif')
    const r = await writeEif(path, {
      ...sampleSections(),
      metadata: {
        imageName: 'img',
        imageVersion: 'v1',
        customMetadata: { owner: 'me' },
        dockerInfo: { Id: 'x' },
      },
    })
    const d = await describeEif(path)
    expect(Object.keys(d)).toEqual([
      'EifVersion',
      'Measurements',
      'IsSigned',
      'CheckCRC',
      'ImageName',
      'ImageVersion',
      'Metadata',
    ])
    expect(d).toEqual({
      EifVersion: 4,
      Measurements: {
        HashAlgorithm: 'Sha384 { ... }',
        PCR0: r.pcrs.PCR0,
        PCR1: r.pcrs.PCR1,
        PCR2: r.pcrs.PCR2,
      },
      IsSigned: false,
      CheckCRC: true,
      ImageName: 'img',
      ImageVersion: 'v1',
      Metadata: {
        BuildTime: '1970-01-01T00:00:00.000000+00:00',
        BuildTool: '@enclave/eif',
        BuildToolVersion: PACKAGE_VERSION,
        OperatingSystem: 'Generic Linux',
        KernelVersion: 'Unknown version',
        DockerInfo: { Id: 'x' },
        owner: 'me',
      },
    })
  })

  it('reports CheckCRC false (not an exception) for a data byte flipped in a ramdisk', async () => {
    const path = join(tmp.path, 'flip.eif')
    const r = await writeEif(path, sampleSections())
    const bytes = readFileSync(path)
    bytes[r.sections[4]!.offset + 20]! ^= 0xff
    writeFileSync(path, bytes)
    const d = await describeEif(path)
    expect(d.CheckCRC).toBe(false)
    expect(d.Measurements.PCR0).not.toBe(r.pcrs.PCR0)
  })

  it('keeps the package version constant in step with package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    expect(PACKAGE_VERSION).toBe(pkg.version)
  })
})
