// @ts-check
// The second boot of `pnpm test:vm`: an EIF that @enclave/builder makes from a small test image
// (busybox-static and a shell script, as an OCI layout made here, no Docker engine) is taken apart
// with @enclave/eif's reader, and its own kernel, cmdline and ramdisks boot under QEMU. The blobs
// folder is a stand-in: Debian's kernel as bzImage, nitro-cli's x86_64 cmdline, and
// guest/eif-init, which does what the Nitro init does, as init. The app writes to the serial
// console and the host checks those lines.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import {
  chmodSync,
  copyFileSync,
  createWriteStream,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { cleanLine } from './console.mjs'

/** The suite name this boot reports under (selectable with ENCLAVE_VM_SUITES like the others). */
export const EIF_SUITE = 'vm/eif-boot'

/** nitro-cli's x86_64 cmdline blob (reference: nitro-formats.md, section 1.2). */
export const NITRO_CMDLINE_X86 =
  'reboot=k panic=30 pci=off nomodules console=ttyS0 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd random.trust_cpu=on'

/**
 * The test image's run configuration. An argument with spaces and a value with spaces check that
 * /cmd and /env are one entry per line, not split on blanks.
 */
export const TEST_IMAGE = Object.freeze({
  cmd: Object.freeze(['/app/report.sh', 'one two', 'three']),
  env: Object.freeze(['PATH=/usr/bin:/bin', 'GREETING=hello', 'SPACED=a b']),
  /** busybox applets the app uses, as symlinks in /bin. */
  applets: Object.freeze(['sh', 'cat', 'tr']),
})

// The app: what it received (argv and environment exactly as exec'd, from /proc), what it sees as
// its root, and a greeting that only the image's ENV can complete.
const APP_SCRIPT = `#!/bin/sh
echo "enclave-app-ok $GREETING"
echo "enclave-app-argv $(tr '\\0' '|' </proc/$$/cmdline)"
echo "enclave-app-env $(tr '\\0' '|' </proc/$$/environ)"
echo "enclave-app-root $(cat /etc/enclave-test-image) cmd-file=$([ -e /cmd ] && echo present || echo absent)"
`

/**
 * The lines the app must print for an image carrying `nonce`. The shebang makes the kernel run
 * /bin/sh with the script's path first.
 * @param {string} nonce
 * @returns {string[]}
 */
export function expectedAppLines(nonce) {
  const greeting = TEST_IMAGE.env.find((e) => e.startsWith('GREETING='))?.slice('GREETING='.length)
  return [
    `enclave-app-ok ${greeting}`,
    `enclave-app-argv ${['/bin/sh', ...TEST_IMAGE.cmd].map((a) => `${a}|`).join('')}`,
    `enclave-app-env ${TEST_IMAGE.env.map((e) => `${e}|`).join('')}`,
    `enclave-app-root ${nonce} cmd-file=absent`,
  ]
}

/** @param {Buffer | string} data */
const sha256 = (data) => `sha256:${createHash('sha256').update(data).digest('hex')}`

/**
 * The files of a one-layer OCI image layout (uncompressed layer, tag `latest`), as path → bytes.
 * @param {Buffer} layer a tar
 * @param {{ cmd: readonly string[], env: readonly string[] }} run
 * @returns {Map<string, Buffer>}
 */
export function ociLayout(layer, run) {
  const layerDigest = sha256(layer)
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: [...run.env], Cmd: [...run.cmd] },
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
    }),
  )
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(config),
        size: config.length,
      },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length },
      ],
    }),
  )
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: sha256(manifest),
        size: manifest.length,
        platform: { architecture: 'amd64', os: 'linux' },
        annotations: { 'org.opencontainers.image.ref.name': 'latest' },
      },
    ],
  }
  /** @param {string} digest */
  const blob = (digest) => `blobs/sha256/${digest.slice('sha256:'.length)}`
  return new Map([
    ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
    ['index.json', Buffer.from(JSON.stringify(index))],
    [blob(layerDigest), layer],
    [blob(sha256(config)), config],
    [blob(sha256(manifest)), manifest],
  ])
}

/**
 * Writes the test image as an OCI layout in `dir` and returns its reference for buildEif. The
 * layer is made with GNU tar from a staged tree: busybox, applet symlinks, the app, and a marker
 * file holding `nonce` (so the app's output proves this run's image booted).
 * @param {string} dir an empty folder @param {string} busybox a static busybox @param {string} nonce
 */
export function makeTestImage(dir, busybox, nonce) {
  const tree = join(dir, 'tree')
  for (const sub of ['bin', 'app', 'etc']) mkdirSync(join(tree, sub), { recursive: true })
  copyFileSync(busybox, join(tree, 'bin/busybox'))
  chmodSync(join(tree, 'bin/busybox'), 0o755)
  for (const applet of TEST_IMAGE.applets) symlinkSync('busybox', join(tree, 'bin', applet))
  writeFileSync(join(tree, 'app/report.sh'), APP_SCRIPT, { mode: 0o755 })
  writeFileSync(join(tree, 'etc/enclave-test-image'), `${nonce}\n`)
  const layerPath = join(dir, 'layer.tar')
  const tar = spawnSync(
    'tar',
    [
      '--create',
      '--file',
      layerPath,
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-C',
      tree,
      'bin',
      'app',
      'etc',
    ],
    { encoding: 'utf8' },
  )
  if (tar.error || tar.status !== 0) throw new Error(`tar failed: ${tar.error?.message ?? tar.stderr.trim()}`)
  const layout = join(dir, 'layout')
  for (const [path, data] of ociLayout(readFileSync(layerPath), TEST_IMAGE)) {
    mkdirSync(join(layout, path, '..'), { recursive: true })
    writeFileSync(join(layout, path), data)
  }
  return `oci:${layout}:latest`
}

/**
 * @typedef {object} TestEif
 * @property {string} kernel      the EIF's kernel section, as a file
 * @property {string} cmdline     the EIF's cmdline section
 * @property {string[]} ramdisks  the EIF's ramdisk sections in order, as files
 * @property {Record<string, string>} pcrs   from buildEif, checked against the reader's measure()
 * @property {number} size
 */

/**
 * Builds the EIF with @enclave/builder's public API (its dist) and takes its sections out with
 * @enclave/eif's reader, which also re-measures the file: the PCRs must be buildEif's.
 * @param {{ work: string, image: string, vmlinuz: string, init: string }} input
 * @returns {Promise<TestEif>}
 */
export async function buildTestEif(input) {
  const { buildEif } = await import('@enclave/builder')
  const { openEif } = await import('@enclave/eif')
  const blobs = join(input.work, 'blobs')
  mkdirSync(blobs, { recursive: true })
  copyFileSync(input.vmlinuz, join(blobs, 'bzImage'))
  writeFileSync(join(blobs, 'cmdline'), `${NITRO_CMDLINE_X86}\n`)
  copyFileSync(input.init, join(blobs, 'init'))
  const output = join(input.work, 'test.eif')
  const built = await buildEif({ image: input.image, output, blobsDir: blobs, pull: 'never' })

  const eif = await openEif(output)
  try {
    const measured = await eif.measure()
    if (!measured.crc.ok) throw new Error(`the EIF's CRC does not match (${measured.crc.stored} stored)`)
    for (const [pcr, value] of Object.entries(built.measurements)) {
      const again = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (measured.pcrs))[pcr]
      if (again !== value)
        throw new Error(`${pcr} from buildEif is ${value} but the reader measures ${again}`)
    }
    /** @param {number} index @param {string} path */
    const save = async (index, path) => {
      const out = createWriteStream(path)
      for await (const chunk of eif.sectionData(index)) if (!out.write(chunk)) await once(out, 'drain')
      out.end()
      await once(out, 'finish')
      return path
    }
    let kernel = ''
    let cmdline = ''
    /** @type {string[]} */
    const ramdisks = []
    for (const section of eif.sections) {
      if (section.type === 'kernel') kernel = await save(section.index, join(input.work, 'kernel'))
      else if (section.type === 'cmdline') {
        cmdline = readFileSync(await save(section.index, join(input.work, 'cmdline'))).toString('utf8')
      } else if (section.type === 'ramdisk') {
        ramdisks.push(await save(section.index, join(input.work, `ramdisk${ramdisks.length}`)))
      }
    }
    if (!kernel || ramdisks.length !== 2) {
      throw new Error(`expected a kernel and 2 ramdisks in the EIF, found ${eif.sections.map((s) => s.type)}`)
    }
    return {
      kernel,
      cmdline,
      ramdisks,
      pcrs: /** @type {Record<string, string>} */ ({ ...built.measurements }),
      size: built.size,
    }
  } finally {
    await eif.close()
  }
}

/**
 * Judges the boot from its console lines: the init must have run the command, the app must have
 * printed exactly the expected lines between the init's exec and exit lines, and exited 0.
 * @param {string[]} lines raw console lines
 * @param {{ nonce: string, suite?: string }} options
 * @returns {import('./console.mjs').Verdict}
 */
export function judgeEifBoot(lines, options) {
  const suite = options.suite ?? EIF_SUITE
  const clean = lines.map((l) => cleanLine(l).trimEnd())
  const start = clean.findIndex((l) => l.startsWith('VMTEST info eif-init: exec'))
  const exit = clean.findIndex((l, i) => i > start && l.startsWith('VMTEST info eif-init: app exited with '))
  /** @type {string[]} */
  const reasons = []
  if (start === -1) {
    const said = clean.filter((l) => l.startsWith('VMTEST info eif-init: ')).at(-1)
    reasons.push(
      said
        ? `the init stopped: ${said.slice('VMTEST info eif-init: '.length)}`
        : 'the init never ran the command',
    )
  } else {
    const app = clean.slice(start + 1, exit === -1 ? undefined : exit)
    for (const want of expectedAppLines(options.nonce)) {
      if (app.includes(want)) continue
      const key = want.split(' ')[0]
      const got = app.find((l) => l.startsWith(`${key} `) || l === key)
      reasons.push(got === undefined ? `no "${key}" line` : `expected "${want}", got "${got}"`)
    }
    if (exit === -1) reasons.push('the app never exited')
    else {
      const code = clean[exit]?.slice('VMTEST info eif-init: app exited with '.length)
      if (code !== '0') reasons.push(`the app exited with ${code}`)
    }
  }
  if (reasons.length === 0) {
    return { ok: true, passed: [suite], failed: [], problems: [] }
  }
  return { ok: false, passed: [], failed: [{ suite, reason: reasons.join('; ') }], problems: [] }
}
