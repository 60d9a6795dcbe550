import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runCli } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
// The builder's fixtures make real OCI layouts / docker archives with tar-stream.
import {
  writeDockerArchive,
  writeFakeBlobs,
  writeOciLayout,
} from '../../../packages/builder/test/fixtures.js'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
let dir: string

const manifest = (extra = '') => `version: v1
name: test
target: enclave-test/release:v1
sources:
  app: oci:${join(dir, 'app')}
  odyn: ./odyn
egress:
  allow: ["**"]
ingress:
  - listen_port: 8000
${extra}`

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'enclaver-cli-'))
  writeFakeBlobs(join(dir, 'blobs'))
  await writeOciLayout(join(dir, 'app'), {
    layers: [[{ name: 'bin/app', content: 'APP', mode: 0o755 }]],
    config: { Entrypoint: ['/bin/app'], Cmd: ['serve'] },
  })
  await writeDockerArchive(
    join(dir, 'sleeve.tar'),
    { layers: [[{ name: 'usr/local/bin/enclaver-run', content: 'RUN' }]] },
    'sleeve:v1',
  )
  writeFileSync(join(dir, 'odyn'), '#!/bin/sh\n')
  chmodSync(join(dir, 'odyn'), 0o755)
  writeFileSync(join(dir, 'enclaver.yaml'), manifest())
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// Every image here is an OCI layout or a docker archive; an engine reference by mistake must fail
// (exit 5) rather than reach a real engine, which would pull from a registry.
const NO_ENGINE = { DOCKER_HOST: 'unix:///nonexistent/enclaver-test/docker.sock' }

const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(BIN, args, { cwd: dir, env: { ...process.env, ...NO_ENGINE, ...env }, timeoutMs: 60_000 })

describe('enclaver CLI', () => {
  test('--help lists the commands; no command is a usage error (exit 2)', async () => {
    const help = await run(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('build')
    expect(help.stdout).toContain('describe-eif')
    const bad = await run(['no-such-command'])
    expect(bad.code).toBe(2)
    const build = await run(['build', '--help'])
    expect(build.stdout).toContain('--pull')
    expect(build.stdout).toContain('--no-pull')
  })

  test('an engine image with no engine exits 5 naming DOCKER_HOST, under --no-pull too', async () => {
    writeFileSync(
      join(dir, 'engine.yaml'),
      manifest().replace(`oci:${join(dir, 'app')}`, 'enclave-test/not-here:v1'),
    )
    for (const extra of [[], ['--no-pull']]) {
      const r = await run([
        'build',
        '--eif-only',
        '-f',
        'engine.yaml',
        '--blobs',
        join(dir, 'blobs'),
        ...extra,
      ])
      expect(r.code).toBe(5)
      expect(r.stderr).toContain(NO_ENGINE.DOCKER_HOST)
    }
  })

  test('build --eif-only prints enclaver JSON; describe-eif agrees; a second build is byte-identical', async () => {
    const args = ['build', '--eif-only', '--blobs', join(dir, 'blobs')]
    const first = await run([...args, '--output', 'one.eif'])
    expect(first.stderr).not.toMatch(/"level":50/)
    expect(first.code).toBe(0)
    const summary = JSON.parse(first.stdout)
    expect(Object.keys(summary.Measurements)).toEqual(['PCR0', 'PCR1', 'PCR2'])
    expect(summary.Measurements.PCR0).toMatch(/^[0-9a-f]{96}$/)
    expect(summary.Sources.App.ID).toMatch(/^sha256:/)
    expect(summary.Image).toBeUndefined()
    const second = await run([...args, '--output', 'two.eif'])
    expect(second.code).toBe(0)
    expect(readFileSync(join(dir, 'one.eif')).equals(readFileSync(join(dir, 'two.eif')))).toBe(true)

    const described = await run(['describe-eif', 'one.eif'])
    expect(described.code).toBe(0)
    const d = JSON.parse(described.stdout)
    expect(d.Measurements).toMatchObject(summary.Measurements)
    expect(d.Metadata.BuildTime).toBe('1970-01-01T00:00:00.000000+00:00')
    expect(d.Metadata.BuildTool).toBe('@enclave/builder')
  })

  test('build writes the release image as a tarball from the manifest sleeve', async () => {
    writeFileSync(
      join(dir, 'release.yaml'),
      manifest().replace(
        '  odyn: ./odyn',
        `  odyn: ./odyn\n  sleeve: docker-archive:${join(dir, 'sleeve.tar')}`,
      ),
    )
    const r = await run([
      'build',
      '-f',
      'release.yaml',
      '--blobs',
      join(dir, 'blobs'),
      '--release-tar',
      'release.tar',
    ])
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.stdout)
    expect(summary.Image).toEqual({ ID: expect.stringMatching(/^sha256:/), Name: 'enclave-test/release:v1' })
    expect(summary.Sources.Sleeve.Name).toBe('sleeve:v1')
    expect(readFileSync(join(dir, 'release.tar')).length).toBeGreaterThan(1024)
  })

  test('odyn can come from an image (sources.odyn), taken from /usr/local/bin/odyn', async () => {
    await writeOciLayout(join(dir, 'odyn-image'), {
      layers: [[{ name: 'usr/local/bin/odyn', content: 'ODYN FROM IMAGE', mode: 0o755 }]],
    })
    writeFileSync(
      join(dir, 'odyn-image.yaml'),
      manifest().replace('  odyn: ./odyn', `  odyn: oci:${join(dir, 'odyn-image')}`),
    )
    const r = await run([
      'build',
      '--eif-only',
      '-f',
      'odyn-image.yaml',
      '--blobs',
      join(dir, 'blobs'),
      '-o',
      'odyn.eif',
    ])
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.stdout)
    expect(summary.Sources.Odyn.ID).toMatch(/^sha256:/)
    expect(summary.Sources.Odyn.Name).toBe('latest')
  })

  test('a signature block signs the EIF: PCR8 appears and describe-eif verifies it', async () => {
    execFileSync('openssl', [
      'ecparam',
      '-name',
      'secp384r1',
      '-genkey',
      '-noout',
      '-out',
      join(dir, 'key.pem'),
    ])
    execFileSync('openssl', [
      'req',
      '-new',
      '-x509',
      '-key',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-days',
      '30',
      '-subj',
      '/CN=enclaver-test',
    ])
    writeFileSync(join(dir, 'signed.yaml'), manifest('signature:\n  certificate: cert.pem\n  key: key.pem\n'))
    const r = await run([
      'build',
      '--eif-only',
      '-f',
      'signed.yaml',
      '--blobs',
      join(dir, 'blobs'),
      '-o',
      'signed.eif',
    ])
    expect(r.code).toBe(0)
    const summary = JSON.parse(r.stdout)
    expect(summary.Measurements.PCR8).toMatch(/^[0-9a-f]{96}$/)
    const d = JSON.parse((await run(['describe-eif', 'signed.eif'])).stdout)
    expect(d.IsSigned).toBe(true)
    expect(d.Measurements.PCR8).toBe(summary.Measurements.PCR8)
  })

  test('SIGTERM while a layer stalls: exit 130, no EIF or temporary file left', async () => {
    const layout = join(dir, 'stall')
    await writeOciLayout(layout, { layers: [[{ name: 'x', content: 'y' }]] })
    const blobs = join(layout, 'blobs', 'sha256')
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'))
    const m = JSON.parse(readFileSync(join(blobs, index.manifests[0].digest.slice(7)), 'utf8'))
    const layerBlob = join(blobs, m.layers[0].digest.slice(7))
    rmSync(layerBlob)
    execFileSync('mkfifo', [layerBlob])
    // Holds the pipe open without writing for 10 s, then closes it: an empty layer, which would build
    // fine, so exit 130 proves the abort took effect. (A read blocked on a pipe keeps any Node
    // process alive until the pipe closes, so the exit itself comes when the writer is done.)
    const writer = spawn('sh', ['-c', `exec sleep 10 > ${layerBlob}`], { stdio: 'ignore' })
    try {
      writeFileSync(join(dir, 'stall.yaml'), manifest().replace(`oci:${join(dir, 'app')}`, `oci:${layout}`))
      const out = join(dir, 'stall-out')
      mkdirSync(out)
      const child = spawn(
        process.execPath,
        [
          BIN,
          'build',
          '--eif-only',
          '-f',
          'stall.yaml',
          '--blobs',
          join(dir, 'blobs'),
          '-o',
          join(out, 'x.eif'),
        ],
        { cwd: dir },
      )
      let stderr = ''
      let sent = false
      child.stderr.on('data', (c: Buffer) => {
        stderr += c
        if (!sent && stderr.includes('reading layers')) sent = child.kill('SIGTERM')
      })
      const [code] = (await once(child, 'close')) as [number]
      expect(code).toBe(130)
      expect(stderr).toContain('interrupted')
      expect(readdirSync(out)).toEqual([])
    } finally {
      writer.kill('SIGKILL')
    }
  })

  test('a bad manifest exits 3 naming file:line:column', async () => {
    writeFileSync(join(dir, 'bad.yaml'), `${manifest()}api:\n  listen_port: nope\n`)
    const r = await run(['build', '--eif-only', '-f', 'bad.yaml'])
    expect(r.code).toBe(3)
    expect(r.stderr).toContain('bad.yaml:12:16: api.listen_port: expected an integer u16')
    expect(r.stdout).toBe('')
  })

  test('the manifest can come from stdin', async () => {
    const r = await runCli(
      BIN,
      ['build', '--eif-only', '-f', '-', '--blobs', join(dir, 'blobs'), '-o', 'stdin.eif'],
      {
        cwd: dir,
        env: { ...process.env, ...NO_ENGINE },
        input: manifest(),
        timeoutMs: 60_000,
      },
    )
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).Measurements.PCR0).toMatch(/^[0-9a-f]{96}$/)
  })

  test('missing inputs exit 6 with the fix; a corrupt EIF exits 7', async () => {
    const noBlobs = await run(['build', '--eif-only', '--blobs', join(dir, 'nowhere')])
    expect(noBlobs.code).toBe(6)
    expect(noBlobs.stderr).toContain('--blobs DIR')
    const noOdyn = await run([
      'build',
      '--eif-only',
      '--blobs',
      join(dir, 'blobs'),
      '--odyn',
      join(dir, 'missing'),
    ])
    expect(noOdyn.code).toBe(6)
    writeFileSync(join(dir, 'junk.eif'), Buffer.alloc(600, 1))
    const junk = await run(['describe-eif', 'junk.eif'])
    expect(junk.code).toBe(7)
    expect(junk.stderr).toMatch(/ENCLAVE_EIF_/)
  })
})
