// @ts-check
// What of the repository goes into the guest: the guest suites, every built workspace package
// (package.json, dist, native builds, and test/ where it has guest suites) and the runtime dependencies they resolve to.
// Files keep their host paths inside the guest, so pnpm's node_modules symlinks resolve unchanged.
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'

/** Workspace folders whose packages can hold guest suites in test/guest/*.mjs. */
export const SUITE_ROOTS = Object.freeze(['packages', 'apps'])

/**
 * @typedef {object} Suite
 * @property {string} name   `<package folder>/<file without .mjs>`, e.g. vsock-transport/echo
 * @property {string} file   absolute path (the same inside the guest)
 * @property {string} cwd    the package folder
 */

/**
 * @typedef {object} Selection
 * @property {Map<string, 'dir' | 'workspace'>} copies  absolute path -> whole folder or a
 *   workspace package (only its runtime parts)
 * @property {Map<string, string>} links                 symlink path -> its target as stored
 */

/** @param {string} dir */
function listDirs(dir) {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(dir, e.name))
    .sort()
}

/**
 * Files that are suites: `*.mjs` directly in test/guest; names starting with `_` are helpers
 * (and with `.`, hidden).
 * @param {string} packageDir @param {string} label
 * @returns {Suite[]}
 */
function suitesIn(packageDir, label) {
  const guestDir = join(packageDir, 'test', 'guest')
  if (!existsSync(guestDir)) return []
  return readdirSync(guestDir)
    .filter((f) => f.endsWith('.mjs') && !f.startsWith('_') && !f.startsWith('.'))
    .sort()
    .map((f) => ({
      name: `${label}/${f.slice(0, -'.mjs'.length)}`,
      file: join(guestDir, f),
      cwd: packageDir,
    }))
}

/**
 * The suites to run: this tool's own first (they check the guest itself), then every package's.
 * @param {string} root the repository
 * @param {string} vmDir tooling/vm
 * @returns {Suite[]}
 */
export function discoverSuites(root, vmDir) {
  const suites = suitesIn(vmDir, 'vm')
  for (const base of SUITE_ROOTS) {
    for (const dir of listDirs(join(root, base))) suites.push(...suitesIn(dir, basename(dir)))
  }
  return suites
}

/** @param {string} dir @returns {Record<string, any> | undefined} */
function readManifest(dir) {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  } catch {
    return undefined
  }
}

/**
 * Node's lookup for a bare specifier: the nearest node_modules/<name> above `from`.
 * @param {string} from @param {string} name
 */
function findDependency(from, name) {
  let dir = from
  for (;;) {
    const candidate = join(dir, 'node_modules', name)
    if (existsSync(candidate)) return candidate
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

/**
 * Collects the repository parts the guest needs.
 * @param {string} root
 * @param {string[]} extraDirs   folders copied as they are (tooling/vm/test/guest, ...)
 * @returns {Selection}
 */
export function selectProject(root, extraDirs) {
  /** @type {Selection} */
  const selection = { copies: new Map(), links: new Map() }
  const workspaceDirs = new Set(SUITE_ROOTS.flatMap((base) => listDirs(join(root, base))))
  /** @type {string[]} */
  const queue = []
  for (const dir of workspaceDirs) {
    // An unbuilt package has nothing to run; its suites fail with a clear message instead.
    if (!readManifest(dir) || !existsSync(join(dir, 'dist'))) continue
    selection.copies.set(dir, 'workspace')
    queue.push(dir)
  }
  for (const dir of extraDirs) if (existsSync(dir)) selection.copies.set(dir, 'dir')
  selection.copies.set(join(root, 'package.json'), 'dir')

  const visited = new Set()
  while (queue.length > 0) {
    const dir = /** @type {string} */ (queue.shift())
    if (visited.has(dir)) continue
    visited.add(dir)
    const manifest = readManifest(dir) ?? {}
    const names = new Set([
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.optionalDependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
    ])
    for (const name of names) {
      const found = findDependency(dir, name)
      // A missing optional or peer dependency is normal; Node reports a missing required one.
      if (!found) continue
      recordLinks(found, selection)
      const real = realpathSync(found)
      if (!selection.copies.has(real))
        selection.copies.set(real, workspaceDirs.has(real) ? 'workspace' : 'dir')
      queue.push(real)
    }
  }
  return selection
}

/**
 * Records each symlink on the way from `path` to the real folder (pnpm links to links).
 * @param {string} path @param {Selection} selection
 */
function recordLinks(path, selection) {
  let current = path
  for (let hops = 0; hops < 16; hops++) {
    if (!lstatSync(current).isSymbolicLink()) return
    const target = readlinkSync(current)
    selection.links.set(current, target)
    current = resolve(dirname(current), target)
  }
}

/**
 * The parts of a workspace package a guest needs (sources, build intermediates and dev
 * dependencies stay out).
 * @param {string} dir
 */
export function workspaceParts(dir) {
  /** @type {string[]} */
  const parts = [join(dir, 'package.json')]
  for (const sub of ['dist', 'prebuilds']) {
    if (existsSync(join(dir, sub))) parts.push(join(dir, sub))
  }
  // Guest suites may share helpers with the package's other tests (a compliance suite, fixtures),
  // so a package with guest suites brings its whole test folder.
  if (existsSync(join(dir, 'test', 'guest'))) parts.push(join(dir, 'test'))
  const release = join(dir, 'build', 'Release')
  if (existsSync(release)) {
    for (const f of readdirSync(release)) if (f.endsWith('.node')) parts.push(join(release, f))
  }
  return parts
}
