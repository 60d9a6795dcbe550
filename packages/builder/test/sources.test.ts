import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import {
  AbortedError,
  extractImageFile,
  ImageInvalidError,
  ImageNotFoundError,
  ImageReferenceError,
  OutputFailedError,
  openImage,
  parseImageReference,
  type ResolvedImage,
} from '../src/index.js'
import { makeTar, outcome, writeDockerArchive, writeOciLayout } from './fixtures.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sources-test-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

async function layerBytes(image: ResolvedImage): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (const layer of image.layers) {
    const chunks: Buffer[] = []
    for await (const c of await layer.open()) chunks.push(c as Buffer)
    out.push(Buffer.concat(chunks))
  }
  return out
}

describe('parseImageReference', () => {
  test('knows oci:, docker-archive: and engine names', () => {
    expect(parseImageReference('oci:/a/b')).toMatchObject({ kind: 'oci', path: '/a/b' })
    expect(parseImageReference('oci:/a/b:v2')).toMatchObject({ kind: 'oci', path: '/a/b', tag: 'v2' })
    expect(parseImageReference('oci:./x:8080/y')).toMatchObject({ kind: 'oci', path: './x:8080/y' })
    expect(parseImageReference('docker-archive:/t/i.tar')).toMatchObject({
      kind: 'docker-archive',
      path: '/t/i.tar',
    })
    expect(parseImageReference('docker-archive:/t/i.tar:app:v1')).toMatchObject({
      path: '/t/i.tar',
      tag: 'app:v1',
    })
    expect(parseImageReference('registry:5000/app:v1')).toMatchObject({
      kind: 'engine',
      name: 'registry:5000/app:v1',
    })
    for (const bad of ['', 'oci:', 'docker-archive:', 'oci:/x:', 'two words']) {
      expect(() => parseImageReference(bad)).toThrow(ImageReferenceError)
    }
  })

  test('property: any string parses or fails with ImageReferenceError', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const got = outcome(() => parseImageReference(s))
        if (got.ok) expect(['engine', 'oci', 'docker-archive']).toContain(got.value.kind)
        else expect(got.error).toBeInstanceOf(ImageReferenceError)
      }),
    )
  })
})

describe('OCI layout', () => {
  test('reads config and plain or gzip layers, selecting by tag', async () => {
    const spec = {
      layers: [[{ name: 'a', content: 'A' }], [{ name: 'b', content: 'B' }]],
      config: { Entrypoint: ['/a'], Cmd: null, Env: ['X=1'], WorkingDir: '/w' },
    }
    const id = await writeOciLayout(join(dir, 'gz'), { ...spec, gzip: true }, 'v1')
    const image = await openImage(`oci:${join(dir, 'gz')}:v1`)
    expect(image.id).toBe(id)
    expect(image.config).toEqual({ Entrypoint: ['/a'], Cmd: null, Env: ['X=1'], WorkingDir: '/w' })
    const plain = await Promise.all(spec.layers.map((l) => makeTar(l)))
    expect(await layerBytes(image)).toEqual(plain)
    await expect(openImage(`oci:${join(dir, 'gz')}:v2`)).rejects.toBeInstanceOf(ImageNotFoundError)
    await expect(openImage(`oci:${join(dir, 'nothing')}`)).rejects.toBeInstanceOf(ImageNotFoundError)
  })

  test('a layer that does not match its digest fails the read', async () => {
    await writeOciLayout(join(dir, 'o'), { layers: [[{ name: 'a', content: 'A'.repeat(100) }]] })
    const image = await openImage(`oci:${join(dir, 'o')}`)
    const blobs = join(dir, 'o', 'blobs', 'sha256')
    const layerDigest = image.layers[0]!.id.split(':')[1]!
    const bytes = readFileSync(join(blobs, layerDigest))
    bytes[600] = bytes[600]! ^ 1
    writeFileSync(join(blobs, layerDigest), bytes)
    await expect(layerBytes(image)).rejects.toBeInstanceOf(ImageInvalidError)
  })

  test('walks a multi-platform index to the wanted architecture and refuses zstd layers', async () => {
    const root = join(dir, 'multi')
    const amd = await writeOciLayout(root, {
      layers: [[{ name: 'x', content: 'amd' }]],
      architecture: 'amd64',
    })
    const amdIndex = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'))
    await writeOciLayout(root, { layers: [[{ name: 'x', content: 'arm' }]], architecture: 'arm64' })
    const armIndex = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8'))
    const nested = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          { ...amdIndex.manifests[0], platform: { architecture: 'amd64', os: 'linux' } },
          { ...armIndex.manifests[0], platform: { architecture: 'arm64', os: 'linux' } },
        ],
      }),
    )
    const digest = createHash('sha256').update(nested).digest('hex')
    writeFileSync(join(root, 'blobs', 'sha256', digest), nested)
    writeFileSync(
      join(root, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.index.v1+json',
            digest: `sha256:${digest}`,
            size: nested.length,
          },
        ],
      }),
    )
    expect((await openImage(`oci:${root}`)).id).toBe(amd)
    const arm = await openImage(`oci:${root}`, { architecture: 'arm64' })
    expect(arm.architecture).toBe('arm64')
    await expect(openImage(`oci:${root}`, { architecture: 's390x' })).rejects.toBeInstanceOf(
      ImageNotFoundError,
    )

    // zstd: rewrite the manifest's media type.
    const z = join(dir, 'z')
    await writeOciLayout(z, { layers: [[{ name: 'x', content: 'z' }]] })
    const idx = JSON.parse(readFileSync(join(z, 'index.json'), 'utf8'))
    const mPath = join(z, 'blobs', 'sha256', idx.manifests[0].digest.split(':')[1])
    const manifest = JSON.parse(readFileSync(mPath, 'utf8'))
    manifest.layers[0].mediaType = 'application/vnd.oci.image.layer.v1.tar+zstd'
    const mBytes = Buffer.from(JSON.stringify(manifest))
    const mDigest = createHash('sha256').update(mBytes).digest('hex')
    writeFileSync(join(z, 'blobs', 'sha256', mDigest), mBytes)
    idx.manifests[0].digest = `sha256:${mDigest}`
    writeFileSync(join(z, 'index.json'), JSON.stringify(idx))
    const zimg = await openImage(`oci:${z}`)
    await expect(zimg.layers[0]!.open()).rejects.toThrow(/zstd/)
  })
})

describe('extractImageFile', () => {
  test('copies the final version of a file out of an image, through symlinks, atomically', async () => {
    await writeOciLayout(join(dir, 'odyn'), {
      layers: [
        [
          { name: 'usr/local/bin/odyn', content: 'old', mode: 0o755 },
          { name: 'bin', type: 'symlink', linkname: 'usr/local/bin' },
        ],
        [{ name: 'usr/local/bin/odyn', content: 'new odyn', mode: 0o750 }],
      ],
    })
    const dest = join(dir, 'odyn.bin')
    const got = await extractImageFile(`oci:${join(dir, 'odyn')}`, '/bin/odyn', dest)
    expect(readFileSync(dest, 'utf8')).toBe('new odyn')
    expect(got.mode).toBe(0o750)
    expect(statSync(dest).mode & 0o777).toBe(0o750)
    await expect(
      extractImageFile(`oci:${join(dir, 'odyn')}`, '/usr/local/bin/nope', join(dir, 'x')),
    ).rejects.toBeInstanceOf(ImageNotFoundError)
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([])
  })

  test('concurrent extracts into one folder (even to one path) never share a temporary file', async () => {
    // Big enough that the writes overlap; a shared temp name would mix them or lose a rename.
    const a = Buffer.alloc(512 * 1024, 'a')
    const b = Buffer.alloc(512 * 1024 + 7, 'b')
    await writeOciLayout(join(dir, 'a'), { layers: [[{ name: 'bin/odyn', content: a, mode: 0o755 }]] })
    await writeOciLayout(join(dir, 'b'), { layers: [[{ name: 'bin/odyn', content: b, mode: 0o755 }]] })
    const out = join(dir, 'out')
    mkdirSync(out)
    const same = join(out, 'odyn')
    const results = await Promise.allSettled([
      extractImageFile(`oci:${join(dir, 'a')}`, '/bin/odyn', same),
      extractImageFile(`oci:${join(dir, 'b')}`, '/bin/odyn', same),
      extractImageFile(`oci:${join(dir, 'a')}`, '/bin/odyn', join(out, 'odyn-a')),
      extractImageFile(`oci:${join(dir, 'b')}`, '/bin/odyn', join(out, 'odyn-b')),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'])
    const got = readFileSync(same)
    expect(got.equals(a) || got.equals(b)).toBe(true)
    expect(readFileSync(join(out, 'odyn-a')).equals(a)).toBe(true)
    expect(readFileSync(join(out, 'odyn-b')).equals(b)).toBe(true)
    expect(readdirSync(out).sort()).toEqual(['odyn', 'odyn-a', 'odyn-b'])
  })

  test('a failed extract leaves neither the destination nor a temporary file', async () => {
    await writeOciLayout(join(dir, 'img'), { layers: [[{ name: 'bin/odyn', content: 'x', mode: 0o755 }]] })
    const out = join(dir, 'out')
    // The destination is a non-empty folder, so the final rename fails after the data was written.
    mkdirSync(join(out, 'odyn', 'in-the-way'), { recursive: true })
    await expect(
      extractImageFile(`oci:${join(dir, 'img')}`, '/bin/odyn', join(out, 'odyn')),
    ).rejects.toSatisfy(
      (e: unknown) => e instanceof OutputFailedError && e.message.includes(join(out, 'odyn')),
    )
    expect(readdirSync(out)).toEqual(['odyn'])
    expect(readdirSync(join(out, 'odyn'))).toEqual(['in-the-way'])
    // An aborted extract likewise.
    const aborted = new AbortController()
    aborted.abort(new Error('stop'))
    await expect(
      extractImageFile(`oci:${join(dir, 'img')}`, '/bin/odyn', join(out, 'odyn2'), {
        signal: aborted.signal,
      }),
    ).rejects.toBeInstanceOf(AbortedError)
    expect(readdirSync(out)).toEqual(['odyn'])
  })
})

describe('docker-archive', () => {
  test('reads layers in manifest order wherever they sit in the tarball, without extracting', async () => {
    const spec = {
      layers: [
        [{ name: 'one', content: '1' }],
        [{ name: 'two', content: '22' }],
        [{ name: 'three', content: '' }],
      ],
    }
    const id = await writeDockerArchive(join(dir, 'img.tar'), spec, 'app:v1')
    const before = readdirSync(dir)
    const image = await openImage(`docker-archive:${join(dir, 'img.tar')}`)
    expect(image.id).toBe(id)
    expect(image.name).toBe('app:v1')
    expect(await layerBytes(image)).toEqual(await Promise.all(spec.layers.map((l) => makeTar(l))))
    await image.close()
    expect(readdirSync(dir)).toEqual(before)
    expect((await openImage(`docker-archive:${join(dir, 'img.tar')}:app:v1`)).id).toBe(id)
    await expect(openImage(`docker-archive:${join(dir, 'img.tar')}:other`)).rejects.toBeInstanceOf(
      ImageNotFoundError,
    )
  })

  test('reads the Docker 25+ layout (blobs/sha256/… members named in manifest.json)', async () => {
    const spec = { layers: [[{ name: 'one', content: '1' }], [{ name: 'two', content: '2' }]] }
    const id = await writeDockerArchive(join(dir, 'oci-save.tar'), spec, 'app:v2', 'oci')
    const image = await openImage(`docker-archive:${join(dir, 'oci-save.tar')}`)
    expect(image.id).toBe(id)
    expect(await layerBytes(image)).toEqual(await Promise.all(spec.layers.map((l) => makeTar(l))))
  })

  test('a file that is not a tar, or lacks manifest.json, is ImageInvalidError', async () => {
    writeFileSync(join(dir, 'junk.tar'), Buffer.alloc(2048, 7))
    await expect(openImage(`docker-archive:${join(dir, 'junk.tar')}`)).rejects.toBeInstanceOf(
      ImageInvalidError,
    )
    writeFileSync(join(dir, 'empty.tar'), await makeTar([{ name: 'x', content: 'y' }]))
    await expect(openImage(`docker-archive:${join(dir, 'empty.tar')}`)).rejects.toThrow(/no manifest.json/)
    writeFileSync(
      join(dir, 'cut.tar'),
      (await makeTar([{ name: 'x', content: 'y'.repeat(3000) }])).subarray(0, 1024),
    )
    await expect(openImage(`docker-archive:${join(dir, 'cut.tar')}`)).rejects.toThrow(/truncated/)
  })

  test('property: random bytes never crash the archive reader with an untyped error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 4096 }), async (bytes) => {
        const file = join(dir, 'fuzz.tar')
        writeFileSync(file, bytes)
        await expect(openImage(`docker-archive:${file}`)).rejects.toSatisfy(
          (e) => e instanceof ImageInvalidError || e instanceof ImageNotFoundError,
        )
      }),
      { numRuns: 100 },
    )
  })
})
