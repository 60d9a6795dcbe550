import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { computePcrs, describeEif } from '@enclave/eif'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { buildEif, GENERATED_MTIME, InputMissingError, LayerInvalidError } from '../src/index.js'
import { eifSections, gnuExtract, gnuList, parseNewc } from './cpio-tools.js'
import {
  type ImageSpec,
  type TarSpec,
  writeDockerArchive,
  writeFakeBlobs,
  writeOciLayout,
} from './fixtures.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'builder-test-'))
  writeFakeBlobs(join(dir, 'blobs'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

async function build(spec: ImageSpec, extra: Partial<Parameters<typeof buildEif>[0]> = {}) {
  await writeOciLayout(join(dir, 'oci'), spec)
  const output = join(dir, `out-${Math.random().toString(36).slice(2)}.eif`)
  const result = await buildEif({
    image: `oci:${join(dir, 'oci')}`,
    output,
    blobsDir: join(dir, 'blobs'),
    ...extra,
  })
  const sections = await eifSections(output)
  const ramdisks = sections.filter((s) => s.type === 'ramdisk').map((s) => s.data)
  return { result, output, sections, bootstrap: ramdisks[0]!, customer: ramdisks[1]! }
}

function extract(archive: Buffer): string {
  const out = mkdtempSync(join(dir, 'x-'))
  gnuExtract(archive, out)
  return out
}

const d = (name: string, extra: Partial<TarSpec> = {}): TarSpec => ({ name, type: 'directory', ...extra })
const f = (name: string, content: string, extra: Partial<TarSpec> = {}): TarSpec => ({
  name,
  content,
  ...extra,
})

describe('buildEif: layers → customer ramdisk', () => {
  test('flattens whiteouts, opaque directories, hard links, symlinks, modes and owners', async () => {
    const { customer, bootstrap, sections } = await build({
      layers: [
        [
          d('etc/'),
          f('etc/gone', 'bye'),
          f('etc/kept', 'stay', { mode: 0o600, uid: 1000, gid: 1000 }),
          d('opq/'),
          f('opq/old', 'old'),
          d('dir2file/'),
          f('dir2file/child', 'c'),
          f('bin/tool', 'TOOL', { mode: 0o755 }),
          { name: 'bin/tool-link', type: 'link', linkname: 'bin/tool' },
          { name: 'bin/sym', type: 'symlink', linkname: 'tool' },
          d('tmp/', { mode: 0o1777 }),
        ],
        [
          f('etc/.wh.gone', ''),
          d('opq/'),
          f('opq/.wh..wh..opq', ''),
          f('opq/new', 'new'),
          f('dir2file', 'now a file'),
          f('deep/a/b/c', 'implicit parents'),
        ],
      ],
      config: { Entrypoint: ['/bin/tool'], Cmd: ['--flag', 'x y'], Env: ['PATH=/bin', 'A=b c'] },
    })
    expect(sections.map((s) => s.type)).toEqual(['kernel', 'cmdline', 'metadata', 'ramdisk', 'ramdisk'])
    expect(gnuList(bootstrap)).toEqual(['dev', 'init', 'nsm.ko'])

    const names = gnuList(customer)
    // Every parent comes before its children (the kernel's unpacker does not make parents).
    names.forEach((n, i) => {
      const parent = n.slice(0, n.lastIndexOf('/'))
      if (n.includes('/')) expect(names.slice(0, i)).toContain(parent)
    })
    expect(names[0]).toBe('rootfs')
    expect(names.slice(-2)).toEqual(['cmd', 'env'])

    const root = extract(customer)
    const r = (p: string) => join(root, 'rootfs', p)
    expect(existsSync(r('etc/gone'))).toBe(false)
    expect(readFileSync(r('etc/kept'), 'utf8')).toBe('stay')
    expect(statSync(r('etc/kept')).mode & 0o777).toBe(0o600)
    expect(statSync(r('etc/kept')).uid).toBe(1000)
    expect(readdirSync(r('opq'))).toEqual(['new'])
    expect(readFileSync(r('dir2file'), 'utf8')).toBe('now a file')
    expect(readFileSync(r('bin/tool-link'), 'utf8')).toBe('TOOL')
    expect(statSync(r('bin/tool-link')).ino).toBe(statSync(r('bin/tool')).ino)
    expect(readlinkSync(r('bin/sym'))).toBe('tool')
    expect(statSync(r('tmp')).mode & 0o7777).toBe(0o1777)
    expect(readFileSync(r('deep/a/b/c'), 'utf8')).toBe('implicit parents')
    for (const g of ['dev', 'run', 'sys', 'var', 'proc']) expect(lstatSync(r(g)).isDirectory()).toBe(true)
    // nitro-cli's rule: CMD when present, else ENTRYPOINT.
    expect(readFileSync(join(root, 'cmd'), 'utf8')).toBe('--flag\nx y\n')
    expect(readFileSync(join(root, 'env'), 'utf8')).toBe('PATH=/bin\nA=b c\n')

    const parsed = parseNewc(customer).entries
    const generated = parsed.filter((e) => ['rootfs', 'rootfs/dev', 'cmd', 'env'].includes(e.name))
    for (const e of generated) expect([e.mtime, e.uid, e.gid]).toEqual([GENERATED_MTIME, 0, 0])
    expect(parsed.find((e) => e.name === 'rootfs/etc/kept')!.mtime).toBe(1_600_000_000)
    const inodes = parsed.map((e) => e.ino)
    expect(inodes[0]).toBe(721)
  })

  test('PCRs equal a recomputation over the sections, and describe-eif agrees', async () => {
    const { result, output, sections } = await build({ layers: [[f('hello', 'world')]] })
    const data = (t: string) => sections.filter((s) => s.type === t).map((s) => s.data)
    const pcrs = computePcrs({
      kernel: data('kernel')[0]!,
      cmdline: data('cmdline')[0]!,
      ramdisks: data('ramdisk'),
    })
    expect(result.measurements).toMatchObject(pcrs)
    const described = await describeEif(output)
    expect(described.Measurements).toMatchObject(result.measurements)
    expect(described.CheckCRC).toBe(true)
  })

  test('is reproducible: two builds give byte-identical EIFs; SOURCE_DATE_EPOCH changes only metadata', async () => {
    const spec: ImageSpec = {
      layers: [[d('a/'), f('a/b', 'x'.repeat(5000)), f('c', 'y')], [f('a/.wh.b', '')]],
      gzip: true,
    }
    const one = await build(spec)
    const two = await build(spec)
    expect(readFileSync(one.output).equals(readFileSync(two.output))).toBe(true)
    const later = await build(spec, { sourceDateEpoch: 1_700_000_000 })
    expect(readFileSync(later.output).equals(readFileSync(one.output))).toBe(false)
    expect(later.result.measurements).toEqual(one.result.measurements)
    expect((await describeEif(later.output)).Metadata?.BuildTime).toMatch(/^2023-11-14T22:13:20/)
  })

  test('adds the enclaver layer: manifest, odyn, and odyn as the entrypoint', async () => {
    const odyn = join(dir, 'odyn')
    writeFileSync(odyn, '#!/bin/sh\necho odyn\n')
    chmodSync(odyn, 0o700)
    const { customer } = await build(
      {
        layers: [[d('etc/', { mode: 0o700, uid: 5 }), f('app', 'APP')]],
        config: { Entrypoint: ['/app'], Cmd: ['serve'] },
      },
      { amend: { manifestText: 'version: v1\n', odynPath: odyn } },
    )
    const root = extract(customer)
    expect(readFileSync(join(root, 'rootfs/etc/enclaver/enclaver.yaml'), 'utf8')).toBe('version: v1\n')
    expect(readFileSync(join(root, 'rootfs/sbin/odyn'), 'utf8')).toContain('echo odyn')
    expect(statSync(join(root, 'rootfs/sbin/odyn')).mode & 0o777).toBe(0o755)
    // The image's own /etc keeps its mode and owner.
    expect(statSync(join(root, 'rootfs/etc')).mode & 0o777).toBe(0o700)
    expect(readFileSync(join(root, 'cmd'), 'utf8')).toBe(
      '/sbin/odyn\n--config-dir\n/etc/enclaver\n--\n/app\nserve\n',
    )
  })

  test('files added under a symlinked directory land in its target (merged /usr: sbin -> usr/sbin)', async () => {
    const odyn = join(dir, 'odyn')
    writeFileSync(odyn, 'ODYN')
    const { customer } = await build(
      {
        layers: [
          [
            d('usr/'),
            d('usr/sbin/'),
            f('usr/sbin/init', 'INIT', { mode: 0o755 }),
            { name: 'sbin', type: 'symlink', linkname: 'usr/sbin' },
            { name: 'loop', type: 'symlink', linkname: 'loop' },
            { name: 'up', type: 'symlink', linkname: '../../..' },
          ],
          [f('up/top', 'clamped at the root')],
        ],
        config: { Cmd: ['/sbin/init'] },
      },
      { amend: { manifestText: 'v', odynPath: odyn } },
    )
    const root = extract(customer)
    expect(readlinkSync(join(root, 'rootfs/sbin'))).toBe('usr/sbin')
    expect(readFileSync(join(root, 'rootfs/usr/sbin/odyn'), 'utf8')).toBe('ODYN')
    expect(readFileSync(join(root, 'rootfs/usr/sbin/init'), 'utf8')).toBe('INIT')
    expect(readFileSync(join(root, 'rootfs/top'), 'utf8')).toBe('clamped at the root')
    await expect(
      build({ layers: [[{ name: 'loop', type: 'symlink', linkname: 'loop' }], [f('loop/x', '')]] }),
    ).rejects.toThrow(/too many levels of symbolic links/)
  })

  test('an arm64 image takes the Image kernel and sets the aarch64 flag', async () => {
    writeFileSync(join(dir, 'blobs', 'Image'), Buffer.alloc(2048, 0x77))
    const { output } = await build({ layers: [[f('x', 'y')]], architecture: 'arm64' })
    expect(readFileSync(output).readUInt16BE(6)).toBe(1)
    rmSync(join(dir, 'blobs', 'Image'))
    await expect(build({ layers: [[f('x', 'y')]], architecture: 'arm64' })).rejects.toThrow(/Image/)
  })

  test('docker-archive sources give the same ramdisks as the OCI layout of the same image', async () => {
    const spec: ImageSpec = { layers: [[f('one', '1')], [f('two', '2'), f('.wh.one', '')]] }
    const viaOci = await build(spec)
    await writeDockerArchive(join(dir, 'img.tar'), spec)
    const output = join(dir, 'archive.eif')
    const r = await buildEif({
      image: `docker-archive:${join(dir, 'img.tar')}`,
      output,
      blobsDir: join(dir, 'blobs'),
    })
    expect(r.measurements).toEqual(viaOci.result.measurements)
    expect(r.image.Name).toBe('test/app:latest')
  })

  test('missing blobs and a hard link to nothing are typed errors, and no EIF is left behind', async () => {
    rmSync(join(dir, 'blobs', 'init'))
    await expect(build({ layers: [[f('x', 'y')]] })).rejects.toBeInstanceOf(InputMissingError)
    writeFakeBlobs(join(dir, 'blobs'))
    await expect(build({ layers: [[{ name: 'l', type: 'link', linkname: 'nope' }]] })).rejects.toBeInstanceOf(
      LayerInvalidError,
    )
    await expect(build({ layers: [[f('../escape', 'x')]] })).rejects.toThrow(/escapes the root/)
    expect(readdirSync(dir).filter((n) => n.endsWith('.eif') || n.endsWith('.tmp'))).toEqual([])
  })

  test('a larger image streams through and matches GNU cpio extraction byte for byte', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024)
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i)
    const { customer } = await build({ layers: [[{ name: 'big.bin', content: big }]] })
    const root = extract(customer)
    const sum = execFileSync('sha256sum', [join(root, 'rootfs/big.bin')])
      .toString()
      .split(' ')[0]
    expect(sum).toBe(createHash('sha256').update(big).digest('hex'))
  })
})
