import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import fc from 'fast-check'
import { afterEach, describe, expect, test } from 'vitest'
import { type CpioEntry, CpioWriter, FIRST_INODE } from '../src/cpio.js'
import { gnuExtract, gnuList, parseNewc } from './cpio-tools.js'

async function archive(entries: readonly (CpioEntry & { data?: Buffer })[]): Promise<Buffer> {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c)
      cb()
    },
  })
  const w = new CpioWriter(sink)
  for (const { data, ...e } of entries) await w.add(e, data)
  await w.finish()
  return Buffer.concat(chunks)
}

const base = { uid: 0, gid: 0, mtime: 1492533000 }
let dirs: string[] = []
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
  dirs = []
})
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'cpio-test-'))
  dirs.push(d)
  return d
}

describe('CpioWriter', () => {
  test('writes linuxkit-style newc that GNU cpio lists and extracts', async () => {
    const buf = await archive([
      { ...base, name: 'dir', type: 'directory', mode: 0o750, size: 0 },
      {
        ...base,
        name: 'dir/file',
        type: 'file',
        mode: 0o640,
        size: 5,
        uid: 1000,
        gid: 1001,
        data: Buffer.from('hello'),
      },
      { ...base, name: 'dir/link', type: 'symlink', mode: 0o777, size: 4, data: Buffer.from('file') },
      { ...base, name: 'dir/odd', type: 'file', mode: 0o4755, size: 3, data: Buffer.from('abc') },
    ])
    expect(buf.length % 512).toBe(0)
    expect(gnuList(buf)).toEqual(['dir', 'dir/file', 'dir/link', 'dir/odd'])
    const { entries } = parseNewc(buf)
    expect(entries.map((e) => e.ino)).toEqual([
      FIRST_INODE,
      FIRST_INODE + 1,
      FIRST_INODE + 2,
      FIRST_INODE + 3,
    ])
    for (const e of entries) {
      expect([e.devmajor, e.devminor]).toEqual([3, 1])
      expect(e.nlink).toBe(e.name === 'dir' ? 2 : 1)
    }
    const out = tmp()
    gnuExtract(buf, out)
    expect(readFileSync(join(out, 'dir/file'), 'utf8')).toBe('hello')
    expect(statSync(join(out, 'dir/file')).mode & 0o7777).toBe(0o640)
    expect(statSync(join(out, 'dir/file')).uid).toBe(1000)
    expect(statSync(join(out, 'dir/odd')).mode & 0o7777).toBe(0o4755)
    expect(readlinkSync(join(out, 'dir/link'))).toBe('file')
    expect(statSync(join(out, 'dir')).mode & 0o7777).toBe(0o750)
    expect(statSync(join(out, 'dir/file')).mtimeMs).toBe(1492533000 * 1000)
  })

  test('hard links share an inode: the first name carries the data, GNU cpio links the rest', async () => {
    const w = await archive([
      {
        ...base,
        name: 'a',
        type: 'file',
        mode: 0o644,
        size: 3,
        nlink: 2,
        ino: 900,
        data: Buffer.from('xyz'),
      },
      { ...base, name: 'b', type: 'file', mode: 0o644, size: 0, nlink: 2, ino: 900 },
    ])
    const out = tmp()
    gnuExtract(w, out)
    expect(readFileSync(join(out, 'b'), 'utf8')).toBe('xyz')
    expect(statSync(join(out, 'a')).ino).toBe(statSync(join(out, 'b')).ino)
  })

  test('streams data and refuses a stream shorter or longer than the declared size', async () => {
    const empty = await archive([])
    expect(gnuList(empty)).toEqual([])
    expect(empty.length).toBe(512)
    const sink = new Writable({ write: (_c, _e, cb) => cb() })
    const w = new CpioWriter(sink)
    await expect(
      w.add({ ...base, name: 'f', type: 'file', mode: 0o644, size: 6 }, Readable.from([Buffer.from('abc')])),
    ).rejects.toThrow(/3 bytes of data for size 6/)
    const w2 = new CpioWriter(sink)
    await expect(
      w2.add({ ...base, name: 'f', type: 'file', mode: 0o644, size: 2 }, Readable.from([Buffer.from('abc')])),
    ).rejects.toThrow(/longer than its size/)
  })

  test('rejects values newc cannot hold', async () => {
    const w = new CpioWriter(new Writable({ write: (_c, _e, cb) => cb() }))
    await expect(w.add({ ...base, name: 'big', type: 'file', mode: 0o644, size: 2 ** 32 })).rejects.toThrow(
      RangeError,
    )
  })

  test('property: any names and contents round-trip through our parser, padded and ordered', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(
          fc.record({
            name: fc.stringMatching(/^[a-zA-Z0-9._-]{1,40}$/),
            data: fc.uint8Array({ maxLength: 300 }),
            mode: fc.integer({ min: 0, max: 0o7777 }),
          }),
          { selector: (e) => e.name, maxLength: 12 },
        ),
        async (files) => {
          const buf = await archive(
            files.map((f) => ({
              ...base,
              name: f.name,
              type: 'file' as const,
              mode: f.mode,
              size: f.data.length,
              data: Buffer.from(f.data),
            })),
          )
          expect(buf.length % 512).toBe(0)
          const { entries } = parseNewc(buf)
          expect(entries.map((e) => e.name)).toEqual(files.map((f) => f.name))
          entries.forEach((e, i) => {
            expect(Buffer.compare(e.data, Buffer.from(files[i]!.data))).toBe(0)
            expect(e.mode).toBe(0o100000 | files[i]!.mode)
          })
        },
      ),
      { numRuns: 60 },
    )
  })
})
