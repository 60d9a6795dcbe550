import { chmodSync, mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildReleaseImage } from '@enclave/builder'
import { describeEif, writeEif } from '@enclave/eif'
import { makeTempDir, runCli } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// The builder's fixtures make real docker archives with tar-stream (no Docker needed).
import { writeDockerArchive } from '../../../packages/builder/test/fixtures.js'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const ODYN = fileURLToPath(new URL('../dist/odyn.js', import.meta.url))

const temp = makeTempDir('enclaver-run-release-')
const dir = temp.path
const eif = join(dir, 'app.eif')
const release = join(dir, 'release.tar')
const notRelease = join(dir, 'plain.tar')
// The CLI's TMPDIR: after every run it must hold no extracted release files.
const cliTmp = join(dir, 'tmp')
let pcr0 = ''

beforeAll(async () => {
  // The simulated app runs as uid 1000: it must be able to reach the temp dirs.
  chmodSync(dir, 0o755)
  mkdirSync(cliTmp, { mode: 0o755 })
  chmodSync(cliTmp, 0o755)
  await writeEif(eif, {
    kernel: Buffer.from('KERNEL'.repeat(64)),
    cmdline: 'console=ttyS0',
    ramdisks: [Buffer.from('bootstrap'.repeat(32)), Buffer.from('customer'.repeat(32))],
  })
  pcr0 = (await describeEif(eif)).Measurements.PCR0
  // A small sleeve base image, as a `docker save` tarball.
  const sleeve = join(dir, 'sleeve.tar')
  await writeDockerArchive(
    sleeve,
    {
      layers: [
        [
          { name: 'etc/', type: 'directory' },
          { name: 'etc/os-release', content: 'NAME=sleeve\n' },
        ],
      ],
    },
    'sleeve:v1',
  )
  await buildReleaseImage({
    base: `docker-archive:${sleeve}`,
    eifPath: eif,
    manifestText:
      'version: v1\nname: app\ntarget: app-release:v1\nsources:\n  app: app:latest\ndefaults:\n  memory_mb: 512\n',
    target: 'app-release:v1',
    tarball: release,
    pull: 'never',
  })
  // The sleeve alone: a valid image without /enclave/application.eif.
  await writeDockerArchive(notRelease, { layers: [[{ name: 'etc/os-release', content: 'x\n' }]] }, 'plain:v1')
}, 60_000)
afterAll(() => temp.remove())

const enclaver = (args: string[]) =>
  runCli(BIN, ['run', ...args], { timeoutMs: 30_000, env: { ...process.env, TMPDIR: cliTmp } })

const leftovers = () => readdirSync(cliTmp).filter((name) => name.startsWith('enclaver-release-'))

describe('enclaver run IMAGE (a release image: /enclave/application.eif + /enclave/enclaver.yaml)', () => {
  it("runs the image's EIF under --simulate: the app's exit code and the EIF's PCR0", async () => {
    const r = await enclaver([
      '--simulate',
      '--debug-mode',
      '--odyn',
      ODYN,
      `docker-archive:${release}`,
      '--',
      'sh',
      '-c',
      'echo "app from the release image"; exit 5',
    ])
    expect(r.code, r.stderr).toBe(5)
    expect(r.stdout).toContain('app from the release image')
    expect(pcr0).toMatch(/^[0-9a-f]{96}$/)
    // The dev NSM inside odyn attests the PCRs of the EIF extracted from the image.
    expect(r.stderr).toContain(`"PCR0":"${pcr0}"`)
    expect(leftovers()).toEqual([])
  })

  it('--expect-pcrs checks the EIF inside the image', async () => {
    const r = await enclaver([
      '--simulate',
      '--odyn',
      ODYN,
      '--expect-pcrs',
      `PCR0=${'ab'.repeat(48)}`,
      `docker-archive:${release}`,
      '--',
      'true',
    ])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('ENCLAVE_SUPERVISOR_PCR_MISMATCH')
    // Removed on errors too.
    expect(leftovers()).toEqual([])
  })

  it('an image without /enclave/application.eif is a clear error (exit 4)', async () => {
    const r = await enclaver(['--simulate', '--odyn', ODYN, `docker-archive:${notRelease}`, '--', 'true'])
    expect(r.code, r.stderr).toBe(4)
    expect(r.stderr).toContain('ENCLAVE_BUILDER_IMAGE_NOT_FOUND')
    expect(r.stderr).toContain('/enclave/application.eif')
    expect(leftovers()).toEqual([])
  })

  it('an image together with --eif or --manifest is a usage error (exit 2)', async () => {
    const withEif = await enclaver(['--simulate', '--eif', eif, `docker-archive:${release}`, '--', 'true'])
    expect(withEif.code).toBe(2)
    expect(withEif.stderr).toContain('not both')
    const withManifest = await enclaver([
      '--manifest',
      join(dir, 'enclaver.yaml'),
      `docker-archive:${release}`,
    ])
    expect(withManifest.code).toBe(2)
    expect(withManifest.stderr).toContain('not both')
  })

  it('more than one operand before "--" is a usage error (exit 2)', async () => {
    const r = await enclaver(['--simulate', `docker-archive:${release}`, 'extra', '--', 'true'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('at most one IMAGE')
  })
})
