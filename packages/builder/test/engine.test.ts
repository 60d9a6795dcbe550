import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import Docker from 'dockerode'
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest'
import {
  buildEif,
  buildReleaseImage,
  EngineUnavailableError,
  ImageNotFoundError,
  openImage,
} from '../src/index.js'
import { eifSections, gnuExtract } from './cpio-tools.js'
import { makeTar, writeFakeBlobs } from './fixtures.js'

const host = inject('dockerHost')
const why = inject('dockerUnavailable')

if (!host) {
  // Say it loudly; in CI a missing engine is a failure, not a skip.
  console.warn(`\n!!! @enclave/builder engine tests NOT RUN: ${why}\n`)
  if (process.env.CI === 'true') {
    test('a Docker engine is available in CI', () => {
      throw new Error(`CI must run the engine tests: ${why}`)
    })
  }
}

describe.skipIf(!host)('Docker engine source (dockerode, real dockerd)', () => {
  const docker = new Docker({ socketPath: host.replace(/^unix:\/\//, '') })
  const repo = `enclave-builder-test/busybox-${process.pid}`
  let dir: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'engine-test-'))
    writeFakeBlobs(join(dir, 'blobs'))
    // A tiny rootfs from busybox-static, imported as an image (no registry is reachable here).
    const rootfs = await makeTar([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/busybox', content: readFileSync('/bin/busybox'), mode: 0o755 },
      { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/motd', content: 'hello from the engine\n' },
    ])
    const stream = await docker.importImage(
      Readable.from([rootfs]) as unknown as NodeJS.ReadableStream,
      {
        repo,
        tag: 'v1',
        changes: ['CMD ["/bin/sh","-c","cat /etc/motd"]', 'ENV GREETING=hi'],
      } as object,
    )
    await new Promise<void>((resolve, reject) =>
      docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())),
    )
  })

  afterAll(async () => {
    await docker
      .getImage(`${repo}:v1`)
      .remove({ force: true })
      .catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  })

  test('builds an EIF from an engine image end to end', async () => {
    const output = join(dir, 'engine.eif')
    const result = await buildEif({
      image: `${repo}:v1`,
      output,
      blobsDir: join(dir, 'blobs'),
      docker,
      pull: 'never',
    })
    const inspect = await docker.getImage(`${repo}:v1`).inspect()
    expect(result.image.ID).toBe(inspect.Id)
    expect(result.image.Name).toBe(`${repo}:v1`)
    const customer = (await eifSections(output)).filter((s) => s.type === 'ramdisk')[1]!.data
    const out = mkdtempSync(join(dir, 'x-'))
    gnuExtract(customer, out)
    expect(readFileSync(join(out, 'rootfs/etc/motd'), 'utf8')).toBe('hello from the engine\n')
    expect(readFileSync(join(out, 'rootfs/bin/busybox')).equals(readFileSync('/bin/busybox'))).toBe(true)
    expect(readFileSync(join(out, 'cmd'), 'utf8')).toBe('/bin/sh\n-c\ncat /etc/motd\n')
    expect(readFileSync(join(out, 'env'), 'utf8')).toContain('GREETING=hi\n')
    // The same image built twice through the engine gives the same bytes.
    const again = join(dir, 'engine2.eif')
    await buildEif({
      image: `${repo}:v1`,
      output: again,
      blobsDir: join(dir, 'blobs'),
      docker,
      pull: 'never',
    })
    expect(readFileSync(again).equals(readFileSync(output))).toBe(true)
  })

  test('release image: the base plus /enclave/{application.eif,enclaver.yaml}, as a tarball and loaded', async () => {
    const eif = join(dir, 'rel.eif')
    await buildEif({ image: `${repo}:v1`, output: eif, blobsDir: join(dir, 'blobs'), docker, pull: 'never' })
    const target = `${repo}-release:v1`
    const tarball = join(dir, 'release.tar')
    const result = await buildReleaseImage({
      base: `${repo}:v1`,
      eifPath: eif,
      manifestText: 'version: v1\n',
      target,
      tarball,
      load: docker,
      docker,
      pull: 'never',
    })
    expect(result.base.Name).toBe(`${repo}:v1`)
    // The tarball is itself a readable image source with the EIF on top.
    const fromTar = await openImage(`docker-archive:${tarball}`)
    expect(fromTar.id).toBe(result.ID)
    expect(fromTar.layers.length).toBe(2)
    await fromTar.close()
    // The engine has it under the target tag, with the same ID, and a container sees the files.
    expect((await docker.getImage(target).inspect()).Id).toBe(result.ID)
    const container = await docker.createContainer({
      Image: target,
      Cmd: ['/bin/sh', '-c', 'sha256sum /enclave/application.eif; cat /enclave/enclaver.yaml'],
      HostConfig: { NetworkMode: 'none' },
    })
    try {
      await container.start()
      const { StatusCode } = await container.wait()
      const logs = (await container.logs({ stdout: true, stderr: true })).toString('latin1')
      expect(StatusCode).toBe(0)
      expect(logs).toContain(createHash('sha256').update(readFileSync(eif)).digest('hex'))
      expect(logs).toContain('version: v1')
    } finally {
      await container.remove({ force: true })
      await docker
        .getImage(target)
        .remove({ force: true })
        .catch(() => {})
    }
  })

  test("an image the engine lacks, with pull: 'never', is ImageNotFoundError and nothing is pulled", async () => {
    // 'never' keeps this test off the network: 'missing' would ask docker.io for it.
    const missing = `${repo}:missing`
    const err = await buildEif({
      image: missing,
      output: join(dir, 'no.eif'),
      blobsDir: join(dir, 'blobs'),
      docker,
      pull: 'never',
    }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ImageNotFoundError)
    expect((err as ImageNotFoundError).code).toBe('ENCLAVE_BUILDER_IMAGE_NOT_FOUND')
    expect((err as Error).message).toContain(`"${missing}"`)
    expect((err as Error).message).toContain("pull: 'never'")
    await expect(docker.getImage(missing).inspect()).rejects.toMatchObject({ statusCode: 404 })
    expect(existsSync(join(dir, 'no.eif'))).toBe(false)
  })

  test("the sleeve base of a release image obeys pull: 'never' too", async () => {
    const eif = join(dir, 'base.eif')
    await buildEif({ image: `${repo}:v1`, output: eif, blobsDir: join(dir, 'blobs'), docker, pull: 'never' })
    await expect(
      buildReleaseImage({
        base: `${repo}:no-such-base`,
        eifPath: eif,
        manifestText: 'version: v1\n',
        target: `${repo}-release:never`,
        tarball: join(dir, 'never.tar'),
        docker,
        pull: 'never',
      }),
    ).rejects.toBeInstanceOf(ImageNotFoundError)
    expect(existsSync(join(dir, 'never.tar'))).toBe(false)
  })
})

test('no engine at the given socket is EngineUnavailableError', async () => {
  const docker = new Docker({ socketPath: '/nonexistent/docker.sock' })
  await expect(
    buildEif({ image: 'anything:latest', output: '/tmp/never.eif', docker, pull: 'never' }),
  ).rejects.toBeInstanceOf(EngineUnavailableError)
})

test('an unknown pull policy is refused before any engine is asked', async () => {
  const docker = new Docker({ socketPath: '/nonexistent/docker.sock' })
  await expect(
    buildEif({ image: 'anything:latest', output: '/tmp/never.eif', docker, pull: 'sometimes' as never }),
  ).rejects.toThrow(/pull must be one of never, missing, always, got sometimes/)
})
