// @ts-check
// Debian's kernel and its three vsock modules, fetched once with apt-get download and kept in
// .vm-cache/kernel/<package>/ (git ignores .vm-cache). Nothing is installed on the machine.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Load order matters: each module needs the ones before it. */
export const VSOCK_MODULES = Object.freeze(['vsock', 'vmw_vsock_virtio_transport_common', 'vsock_loopback'])

const META_PACKAGE = 'linux-image-amd64'

/**
 * @typedef {object} Kernel
 * @property {string} name        the Debian package, e.g. linux-image-6.1.0-56-amd64
 * @property {string} vmlinuz
 * @property {string[]} modules   uncompressed .ko paths in load order
 * @property {boolean} cached     true when nothing had to be downloaded
 */

export class KernelUnavailableError extends Error {
  /** @param {string} message @param {unknown} [cause] */
  constructor(message, cause) {
    super(message, { cause })
    this.name = 'KernelUnavailableError'
  }
}

/** @param {string} dir @param {string} name */
function kernelAt(dir, name) {
  if (!existsSync(join(dir, 'complete'))) return undefined
  return {
    name,
    vmlinuz: join(dir, 'vmlinuz'),
    modules: VSOCK_MODULES.map((m) => join(dir, `${m}.ko`)),
    cached: true,
  }
}

/** The versioned package the meta package points at, from apt's cache (no network). */
function currentPackageName() {
  const result = spawnSync('apt-cache', ['depends', META_PACKAGE], { encoding: 'utf8' })
  if (result.status !== 0) return undefined
  const match = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b/.exec(result.stdout)
  return match?.[1]
}

/**
 * Returns the kernel: a cached one if there is any (apt-cache alone takes seconds; delete
 * .vm-cache/kernel to move to the current package), else the package linux-image-amd64 depends on.
 * @param {string} cacheDir
 * @param {{ log: (line: string) => void }} io
 * @returns {Promise<Kernel>}
 */
export async function obtainKernel(cacheDir, io) {
  const kernelsDir = join(cacheDir, 'kernel')
  const cached = existsSync(kernelsDir)
    ? readdirSync(kernelsDir)
        .filter((entry) => !entry.startsWith('.'))
        .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }))
    : []
  for (const entry of cached) {
    const kernel = kernelAt(join(kernelsDir, entry), entry)
    if (kernel) return kernel
  }
  const name = currentPackageName()
  if (!name) {
    throw new KernelUnavailableError(
      `apt-cache cannot resolve ${META_PACKAGE} and no kernel is cached in ${kernelsDir} ` +
        '(on Debian, run apt-get update)',
    )
  }
  return download(kernelsDir, name, io)
}

/**
 * @param {string} kernelsDir @param {string} name
 * @param {{ log: (line: string) => void }} io
 * @returns {Promise<Kernel>}
 */
async function download(kernelsDir, name, io) {
  mkdirSync(kernelsDir, { recursive: true })
  const work = mkdtempSync(join(kernelsDir, '.download-'))
  try {
    io.log(`downloading ${name} with apt-get download`)
    const fetched = spawnSync('apt-get', ['download', name], { cwd: work, encoding: 'utf8' })
    if (fetched.error || fetched.status !== 0) {
      throw new KernelUnavailableError(
        `apt-get download ${name} failed: ${fetched.error?.message ?? fetched.stderr.trim()}`,
        fetched.error,
      )
    }
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'))
    if (!deb) throw new KernelUnavailableError(`apt-get download ${name} produced no .deb`)
    const extracted = join(work, 'root')
    mkdirSync(extracted)
    // Only the kernel and the vsock modules: the whole package unpacks to ~400 MB.
    await pipeline(
      ['dpkg-deb', ['--fsys-tarfile', join(work, deb)]],
      [
        'tar',
        ['-x', '-C', extracted, '--wildcards', './boot/vmlinuz-*', './lib/modules/*/kernel/net/vmw_vsock/*'],
      ],
    )
    const out = join(work, 'out')
    mkdirSync(out)
    const boot = join(extracted, 'boot')
    const vmlinuz = existsSync(boot) ? readdirSync(boot).find((f) => f.startsWith('vmlinuz-')) : undefined
    if (!vmlinuz) throw new KernelUnavailableError(`${name} holds no /boot/vmlinuz-*`)
    renameSync(join(boot, vmlinuz), join(out, 'vmlinuz'))
    const release = vmlinuz.slice('vmlinuz-'.length)
    const moduleDir = join(extracted, 'lib/modules', release, 'kernel/net/vmw_vsock')
    const files = existsSync(moduleDir) ? readdirSync(moduleDir) : []
    for (const module of VSOCK_MODULES) {
      const file = files.find((f) => f === `${module}.ko` || f.startsWith(`${module}.ko.`))
      if (!file) throw new KernelUnavailableError(`${name} has no module ${module} in ${moduleDir}`)
      decompressModule(join(moduleDir, file), join(out, `${module}.ko`))
    }
    writeFileSync(join(out, 'complete'), `${name}\n`)
    const final = join(kernelsDir, name)
    try {
      renameSync(out, final)
    } catch (error) {
      // Another run finished the same download first; its copy is as good as ours.
      if (!kernelAt(final, name)) throw error
    }
    const kernel = kernelAt(final, name)
    if (!kernel) throw new KernelUnavailableError(`the kernel cache at ${final} is incomplete`)
    return { ...kernel, cached: false }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

/**
 * Newer Debian kernels ship modules as .ko.xz or .ko.zst; busybox's insmod wants them plain.
 * @param {string} from @param {string} to
 */
export function decompressModule(from, to) {
  /** @type {[string, string[]] | undefined} */
  let tool
  if (from.endsWith('.ko')) {
    renameSync(from, to)
    return
  }
  if (from.endsWith('.xz')) tool = ['xz', ['-dc', from]]
  else if (from.endsWith('.zst')) tool = ['zstd', ['-dcq', from]]
  else if (from.endsWith('.gz')) tool = ['gzip', ['-dc', from]]
  if (!tool) throw new KernelUnavailableError(`unknown module compression: ${from}`)
  const result = spawnSync(tool[0], tool[1], { maxBuffer: 64 * 1024 * 1024 })
  if (result.error || result.status !== 0) {
    throw new KernelUnavailableError(`${tool[0]} could not decompress ${from}`, result.error)
  }
  writeFileSync(to, result.stdout)
}

/**
 * Runs `a | b` and rejects unless both exit 0.
 * @param {[string, string[]]} a @param {[string, string[]]} b
 */
function pipeline(a, b) {
  return new Promise((resolve, reject) => {
    const first = spawn(a[0], a[1], { stdio: ['ignore', 'pipe', 'pipe'] })
    const second = spawn(b[0], b[1], { stdio: ['pipe', 'ignore', 'pipe'] })
    first.stdout.pipe(second.stdin)
    // tar stops reading early on error; the writer's EPIPE is reported by the exit codes.
    second.stdin.on('error', () => {})
    let stderr = ''
    first.stderr.on('data', (d) => {
      stderr += d
    })
    second.stderr.on('data', (d) => {
      stderr += d
    })
    let pending = 2
    /** @type {string[]} */
    const failures = []
    /** @param {string} label @returns {(code: number | null, signal: string | null) => void} */
    const done = (label) => (code, signal) => {
      if (code !== 0) failures.push(`${label} exited ${code ?? signal}`)
      if (--pending === 0) {
        if (failures.length === 0) resolve(undefined)
        else reject(new KernelUnavailableError(`${failures.join(', ')}: ${stderr.trim()}`))
      }
    }
    first.on('error', reject)
    second.on('error', reject)
    first.on('exit', done(a[0]))
    second.on('exit', done(b[0]))
  })
}
