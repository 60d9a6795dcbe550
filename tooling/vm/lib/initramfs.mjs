// @ts-check
// Builds the guest's initramfs: uncompressed newc cpio (the kernel unpacks a plain archive much
// faster than a gzip one under emulation).
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import {
  chmodSync,
  copyFileSync,
  createReadStream,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { basename, dirname, join, relative } from 'node:path'
import { workspaceParts } from './project.mjs'

/** Where things live inside the guest. */
export const GUEST = Object.freeze({
  node: '/bin/node',
  busybox: '/bin/busybox',
  modules: '/lib/modules/vmtest',
  runner: '/vmtest/runner.mjs',
  manifest: '/vmtest/suites.json',
})

/**
 * The shared libraries (and the loader) listed in ldd's output. Empty for a static executable.
 * @param {string} output
 * @returns {string[]}
 */
export function parseLdd(output) {
  /** @type {string[]} */
  const libs = []
  for (const line of output.split('\n')) {
    const arrow = /=>\s*(\/\S+)/.exec(line)
    const direct = /^\s*(\/\S+)\s+\(0x/.exec(line)
    const path = arrow?.[1] ?? direct?.[1]
    if (path) libs.push(path)
  }
  return libs
}

/**
 * The shared libraries a dynamic executable needs on this machine.
 * @param {string} file
 */
export function sharedLibraries(file) {
  const result = spawnSync('ldd', [file], { encoding: 'utf8' })
  // ldd exits 1 for "not a dynamic executable": nothing to copy.
  if (result.error) throw new Error(`ldd ${file} failed: ${result.error.message}`)
  const missing = /^\s*(\S+) => not found/m.exec(result.stdout)
  if (missing) throw new Error(`ldd ${file}: ${missing[1]} not found on this machine`)
  return parseLdd(result.stdout)
}

/**
 * @typedef {object} InitramfsInput
 * @property {string} staging        an empty temporary folder
 * @property {string} output         the .cpio file to write
 * @property {string} node           the Node binary for the guest (kept at its host path)
 * @property {string} busybox        a busybox binary (static, or its libraries are added)
 * @property {string[]} modules      kernel modules, in load order
 * @property {string} guestDir       tooling/vm/guest (init and runner.mjs)
 * @property {import('./project.mjs').Selection} selection
 * @property {unknown} manifest      written to GUEST.manifest for the runner
 */

/** @param {string} staging @param {string} guestPath */
const inside = (staging, guestPath) => join(staging, guestPath)

/**
 * Two newc archives in one file (the kernel unpacks concatenated archives in order): the system
 * part, staged in a temporary folder, then the project part and the Node binary, archived straight
 * from their host paths so that nothing big is copied twice.
 * @param {InitramfsInput} input
 * @returns {Promise<{ bytes: number, files: number }>}
 */
export async function buildInitramfs(input) {
  const { staging } = input
  const dirs = ['bin', 'dev', 'proc', 'sys', 'tmp', 'run', 'root', 'etc', 'vmtest', GUEST.modules.slice(1)]
  for (const dir of dirs) mkdirSync(join(staging, dir), { recursive: true })
  chmodSync(join(staging, 'tmp'), 0o1777)

  copyFileSync(input.busybox, inside(staging, GUEST.busybox))
  chmodSync(inside(staging, GUEST.busybox), 0o755)
  const node = realpathSync(input.node)
  symlinkSync(node, inside(staging, GUEST.node))
  for (const module of input.modules) {
    copyFileSync(module, join(inside(staging, GUEST.modules), basename(module)))
  }
  copyFileSync(join(input.guestDir, 'init'), join(staging, 'init'))
  chmodSync(join(staging, 'init'), 0o755)
  copyFileSync(join(input.guestDir, 'runner.mjs'), inside(staging, GUEST.runner))
  writeFileSync(inside(staging, GUEST.manifest), `${JSON.stringify(input.manifest, null, 2)}\n`)
  // localhost must resolve without DNS; root needs a passwd entry for os.userInfo().
  writeFileSync(join(staging, 'etc/hosts'), '127.0.0.1 localhost\n::1 localhost\n')
  writeFileSync(join(staging, 'etc/nsswitch.conf'), 'hosts: files\npasswd: files\ngroup: files\n')
  writeFileSync(join(staging, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
  writeFileSync(join(staging, 'etc/group'), 'root:x:0:\n')

  const project = projectEntries(input.selection, [node])

  // The loader and libraries of every executable part: node, busybox, native addons. Copied (not
  // archived in place) because /lib is a symlink on merged-/usr systems.
  const addons = project.filter((p) => p.endsWith('.node')).map((p) => `/${p}`)
  const libs = new Set([node, input.busybox, ...addons].flatMap((b) => sharedLibraries(b)))
  for (const lib of libs) {
    const at = inside(staging, lib)
    if (existsSync(at)) continue
    mkdirSync(dirname(at), { recursive: true })
    copyFileSync(lib, at)
  }

  const system = listTree(staging)
  await packCpio(staging, system, input.output, 'w')
  await packCpio('/', project, input.output, 'a')
  return { bytes: statSync(input.output).size, files: system.length + project.length }
}

/** What the KVM probe's init prints when it got that far. */
export const PROBE_MARKER = 'VMTEST-PROBE-BOOTED'

/**
 * A minimal initramfs (busybox and an init that prints PROBE_MARKER and powers off), to find out
 * quickly whether a guest boots at all with some accelerator.
 * @param {string} staging an empty temporary folder @param {string} output @param {string} busybox
 */
export async function buildProbeInitramfs(staging, output, busybox) {
  mkdirSync(join(staging, 'bin'), { recursive: true })
  copyFileSync(busybox, join(staging, 'bin/busybox'))
  chmodSync(join(staging, 'bin/busybox'), 0o755)
  for (const lib of sharedLibraries(busybox)) {
    mkdirSync(dirname(inside(staging, lib)), { recursive: true })
    copyFileSync(lib, inside(staging, lib))
  }
  writeFileSync(
    join(staging, 'init'),
    `#!/bin/busybox sh\n/bin/busybox echo ${PROBE_MARKER}\n/bin/busybox poweroff -f\n`,
  )
  chmodSync(join(staging, 'init'), 0o755)
  await packCpio(staging, listTree(staging), output, 'w')
}

/** Where the EIF boot's test archive puts busybox (the EIF's own ramdisks hold none outside rootfs/). */
export const EIF_TOOLS_BUSYBOX = '/vmtest/busybox'

/**
 * The small archive that goes after the EIF's ramdisks: busybox (and its libraries, when it is not
 * static) at EIF_TOOLS_BUSYBOX, the interpreter of guest/eif-init.
 * @param {string} staging an empty temporary folder @param {string} output @param {string} busybox
 */
export async function buildEifToolsArchive(staging, output, busybox) {
  const at = inside(staging, EIF_TOOLS_BUSYBOX)
  mkdirSync(dirname(at), { recursive: true })
  copyFileSync(busybox, at)
  chmodSync(at, 0o755)
  for (const lib of sharedLibraries(busybox)) {
    mkdirSync(dirname(inside(staging, lib)), { recursive: true })
    copyFileSync(lib, inside(staging, lib))
  }
  await packCpio(staging, listTree(staging), output, 'w')
}

/**
 * Concatenates archives into one initrd: the kernel unpacks concatenated newc archives in order,
 * as it does with an EIF's ramdisk sections.
 * @param {string[]} parts @param {string} output
 */
export async function concatenate(parts, output) {
  const out = createWriteStream(output)
  for (const part of parts) {
    for await (const chunk of createReadStream(part)) if (!out.write(chunk)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  return statSync(output).size
}

/**
 * The selected repository parts, with every folder above them, as paths relative to `/` sorted so
 * that a folder comes before what it holds (what cpio and the kernel's unpacker need). Symlinks
 * stay symlinks; `extraFiles` are added as they are.
 * @param {import('./project.mjs').Selection} selection @param {string[]} [extraFiles]
 * @returns {string[]}
 */
export function projectEntries(selection, extraFiles = []) {
  /** @type {Set<string>} */
  const paths = new Set()
  /** @param {string} path */
  const withParents = (path) => {
    for (let dir = dirname(path); dir !== '/' && !paths.has(dir); dir = dirname(dir)) paths.add(dir)
    paths.add(path)
  }
  for (const [path, kind] of selection.copies) {
    const sources = kind === 'workspace' ? workspaceParts(path) : [path]
    // Dependencies come in through the selection's own entries, never wholesale.
    const skip = join(path, 'node_modules')
    for (const source of sources) {
      withParents(source)
      if (lstatSync(source).isDirectory()) for (const p of walk(source, skip)) paths.add(p)
    }
  }
  for (const link of selection.links.keys()) withParents(link)
  for (const file of extraFiles) withParents(file)
  return [...paths].map((p) => p.slice(1)).sort()
}

/**
 * Every path below `dir` (not following symlinks), except `skip` and what is under it.
 * @param {string} dir @param {string} skip
 * @returns {string[]}
 */
function walk(dir, skip) {
  /** @type {string[]} */
  const out = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (path === skip) continue
    out.push(path)
    if (entry.isDirectory()) out.push(...walk(path, skip))
  }
  return out
}

/**
 * Every path below `root`, relative and parents first, as cpio wants them.
 * @param {string} root
 */
function listTree(root) {
  return walk(root, '')
    .map((p) => relative(root, p))
    .sort()
}

const VANISHED = /^cpio: .*: Cannot stat: No such file or directory$/

/**
 * @param {string} cwd @param {string[]} entries relative to cwd
 * @param {string} output @param {'w' | 'a'} flags write a new file, or append another archive
 * @returns {Promise<void>}
 */
function packCpio(cwd, entries, output, flags) {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(output, { flags })
    const cpio = spawn('cpio', ['--create', '--format=newc', '--owner=0:0', '--quiet'], {
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stderr = ''
    cpio.stderr.on('data', (d) => {
      stderr += d
    })
    cpio.stdout.pipe(out)
    cpio.on('error', reject)
    let exited = false
    let finished = false
    /** @type {number | null} */
    let code = null
    const settle = () => {
      if (!exited || !finished) return
      // A file removed between listing and archiving (an editor's temporary file) is only missing
      // from the guest; any other cpio complaint is fatal.
      const problems = stderr.split('\n').filter((l) => l.trim() !== '' && !VANISHED.test(l))
      if (code === 0 || (code === 2 && problems.length === 0)) resolve()
      else reject(new Error(`cpio exited ${code}: ${stderr.trim()}`))
    }
    out.on('finish', () => {
      finished = true
      settle()
    })
    out.on('error', reject)
    cpio.on('exit', (c) => {
      exited = true
      code = c
      settle()
    })
    cpio.stdin.end(`${entries.join('\n')}\n`)
  })
}
