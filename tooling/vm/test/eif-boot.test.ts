import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  buildTestEif,
  EIF_SUITE,
  expectedAppLines,
  judgeEifBoot,
  makeTestImage,
  NITRO_CMDLINE_X86,
  ociLayout,
  TEST_IMAGE,
} from '../lib/eif-boot.mjs'
import { buildEifToolsArchive, concatenate, EIF_TOOLS_BUSYBOX } from '../lib/initramfs.mjs'

const NONCE = '0f5c6c1e-5d6a-4f0b-9d59-1b7f2a1c9e11'
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** A console as a good boot prints it: kernel noise, the init's lines, the app's lines. */
function goodConsole(): string[] {
  return [
    '[    2.41] Run /init as init process',
    'VMTEST info eif-init: started 3.2 s after boot',
    'VMTEST info eif-init: exec (3 argument(s) from /cmd)',
    ...expectedAppLines(NONCE).map((l) => `${l}\r`),
    'VMTEST info eif-init: app exited with 0',
    '[    2.95] reboot: Restarting system',
  ]
}

describe('expectedAppLines', () => {
  it('asks for the greeting from ENV, argv as the shebang makes it, and exactly the image ENV', () => {
    expect(expectedAppLines(NONCE)).toEqual([
      'enclave-app-ok hello',
      'enclave-app-argv /bin/sh|/app/report.sh|one two|three|',
      'enclave-app-env PATH=/usr/bin:/bin|GREETING=hello|SPACED=a b|',
      `enclave-app-root ${NONCE} cmd-file=absent`,
    ])
  })
})

describe('judgeEifBoot', () => {
  it('passes a console with every app line between the exec and a clean exit', () => {
    expect(judgeEifBoot(goodConsole(), { nonce: NONCE })).toEqual({
      ok: true,
      passed: [EIF_SUITE],
      failed: [],
      problems: [],
    })
  })

  it('fails when the environment is not exactly /env, naming both lines', () => {
    const lines = goodConsole().map((l) =>
      l.startsWith('enclave-app-env ')
        ? 'enclave-app-env HOME=/|TERM=linux|PATH=/usr/bin:/bin|GREETING=hello|SPACED=a b|'
        : l,
    )
    const verdict = judgeEifBoot(lines, { nonce: NONCE })
    expect(verdict.ok).toBe(false)
    expect(verdict.failed).toHaveLength(1)
    expect(verdict.failed[0]?.suite).toBe(EIF_SUITE)
    expect(verdict.failed[0]?.reason).toContain(
      'expected "enclave-app-env PATH=/usr/bin:/bin|GREETING=hello|SPACED=a b|"',
    )
    expect(verdict.failed[0]?.reason).toContain('got "enclave-app-env HOME=/|TERM=linux|')
  })

  it('fails on another image (the nonce), a missing line, and a non-zero exit', () => {
    const lines = goodConsole()
      .filter((l) => !l.startsWith('enclave-app-ok'))
      .map((l) =>
        l.startsWith('VMTEST info eif-init: app exited') ? 'VMTEST info eif-init: app exited with 127' : l,
      )
    const reason = judgeEifBoot(lines, { nonce: 'another-run' }).failed[0]?.reason ?? ''
    expect(reason).toContain('no "enclave-app-ok" line')
    expect(reason).toContain('got "enclave-app-root 0f5c6c1e')
    expect(reason).toContain('the app exited with 127')
  })

  it('does not count app lines printed outside the exec..exit window', () => {
    const good = goodConsole()
    const app = good.filter((l) => l.startsWith('enclave-app-'))
    const lines = [...app, ...good.filter((l) => !l.startsWith('enclave-app-'))]
    const verdict = judgeEifBoot(lines, { nonce: NONCE })
    expect(verdict.ok).toBe(false)
    expect(verdict.failed[0]?.reason).toContain('no "enclave-app-ok" line')
  })

  it('reports where the init stopped, or that it never ran, or that the app never exited', () => {
    expect(
      judgeEifBoot(
        ['VMTEST info eif-init: started 1 s after boot', 'VMTEST info eif-init: no /cmd in the initramfs'],
        {
          nonce: NONCE,
        },
      ).failed[0]?.reason,
    ).toBe('the init stopped: no /cmd in the initramfs')
    expect(
      judgeEifBoot(['Kernel panic - not syncing: No working init found.'], { nonce: NONCE }).failed[0]
        ?.reason,
    ).toBe('the init never ran the command')
    const cut = goodConsole().slice(0, 4)
    expect(judgeEifBoot(cut, { nonce: NONCE }).failed[0]?.reason).toContain('the app never exited')
  })
})

describe('ociLayout', () => {
  it('chains index → manifest → config → layer by digest, with the run configuration', () => {
    const layer = Buffer.from('not really a tar, but the layout does not look inside')
    const files = ociLayout(layer, TEST_IMAGE)
    const blob = (digest: string) => {
      const data = files.get(`blobs/sha256/${digest.slice('sha256:'.length)}`)
      if (!data) throw new Error(`no blob ${digest}`)
      expect(sha256(data)).toBe(digest)
      return data
    }
    expect(JSON.parse(files.get('oci-layout')?.toString() ?? '')).toEqual({ imageLayoutVersion: '1.0.0' })
    const index = JSON.parse(files.get('index.json')?.toString() ?? '')
    expect(index.manifests).toHaveLength(1)
    expect(index.manifests[0].annotations['org.opencontainers.image.ref.name']).toBe('latest')
    const manifestBytes = blob(index.manifests[0].digest)
    expect(manifestBytes.length).toBe(index.manifests[0].size)
    const manifest = JSON.parse(manifestBytes.toString())
    const config = JSON.parse(blob(manifest.config.digest).toString())
    expect(config.config).toEqual({ Env: [...TEST_IMAGE.env], Cmd: [...TEST_IMAGE.cmd] })
    expect(config.rootfs.diff_ids).toEqual([sha256(layer)])
    expect(blob(manifest.layers[0].digest)).toEqual(layer)
    expect(manifest.layers[0].size).toBe(layer.length)
  })
})

// The real pieces on the host: GNU tar makes the layer, @enclave/builder's dist makes the EIF,
// @enclave/eif's reader takes it apart, GNU cpio reads the ramdisks. Only the boot is left to
// `pnpm test:vm`. busybox-static is installed by tooling/bootstrap.sh.
describe('the test EIF, built and taken apart on the host', () => {
  const busybox = existsSync('/bin/busybox') ? '/bin/busybox' : '/usr/bin/busybox'
  const init = fileURLToPath(new URL('../guest/eif-init', import.meta.url))
  let temp: { path: string; remove: () => void }
  let dir: string
  beforeEach(() => {
    temp = makeTempDir('enclave-vm-eif-')
    dir = realpathSync(temp.path)
  })
  afterEach(() => temp.remove())

  const cpio = (archive: string, ...args: string[]) => {
    const r = spawnSync('cpio', ['--quiet', ...args], {
      input: readFileSync(archive),
      encoding: 'utf8',
      maxBuffer: 64 * 2 ** 20,
    })
    expect(r.status, r.stderr).toBe(0)
    return r.stdout
  }

  it('holds the kernel and cmdline blobs, the init as ramdisk 0, the image as ramdisk 1', async () => {
    const kernel = join(dir, 'vmlinuz')
    writeFileSync(kernel, 'a stand-in kernel: the EIF does not look inside it')
    const image = makeTestImage(join(dir, 'image'), busybox, NONCE)
    const eif = await buildTestEif({ work: dir, image, vmlinuz: kernel, init })

    expect(readFileSync(eif.kernel)).toEqual(readFileSync(kernel))
    expect(eif.cmdline).toBe(NITRO_CMDLINE_X86)
    expect(eif.pcrs.PCR0).toMatch(/^[0-9a-f]{96}$/)
    expect(eif.ramdisks).toHaveLength(2)
    const [bootstrap, customer] = eif.ramdisks as [string, string]

    expect(cpio(bootstrap, '-it').trim().split('\n')).toEqual(['dev', 'init'])
    expect(cpio(bootstrap, '-i', '--to-stdout', 'init')).toBe(readFileSync(init, 'utf8'))

    const names = cpio(customer, '-it').trim().split('\n')
    for (const name of [
      'rootfs/bin/busybox',
      'rootfs/bin/sh',
      'rootfs/app/report.sh',
      'rootfs/proc',
      'cmd',
      'env',
    ]) {
      expect(names).toContain(name)
    }
    expect(cpio(customer, '-i', '--to-stdout', 'cmd')).toBe(TEST_IMAGE.cmd.map((c) => `${c}\n`).join(''))
    expect(cpio(customer, '-i', '--to-stdout', 'env')).toBe(TEST_IMAGE.env.map((e) => `${e}\n`).join(''))
    expect(cpio(customer, '-i', '--to-stdout', 'rootfs/etc/enclave-test-image')).toBe(`${NONCE}\n`)
    expect(cpio(customer, '-itv', 'rootfs/app/report.sh')).toMatch(/^-rwxr-xr-x/)
  })

  it('adds busybox for the init in its own archive, after the EIF ramdisks', async () => {
    const tools = join(dir, 'tools.cpio')
    await buildEifToolsArchive(join(dir, 'tools'), tools, busybox)
    expect(cpio(tools, '-it')).toContain(EIF_TOOLS_BUSYBOX.slice(1))
    expect(cpio(tools, '-itv', EIF_TOOLS_BUSYBOX.slice(1))).toMatch(
      new RegExp(`^-rwxr-xr-x .* ${statSync(busybox).size} `),
    )

    const a = join(dir, 'a')
    const b = join(dir, 'b')
    writeFileSync(a, 'first ')
    writeFileSync(b, 'second')
    const out = join(dir, 'both')
    expect(await concatenate([a, b], out)).toBe(12)
    expect(readFileSync(out, 'utf8')).toBe('first second')
  })
})
