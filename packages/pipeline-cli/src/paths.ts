import { lstat, mkdir, realpath } from 'node:fs/promises'
import { dirname, isAbsolute, join, resolve, sep } from 'node:path'
import { fsError, LimitExceededError, NoRootError, PathRefusedError } from './errors.js'

/** True when `child` is `parent` or lies below it (both absolute and normalised). */
export function isInside(parent: string, child: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep)
}

/**
 * Confines peer-supplied paths to a set of root folders. Checks happen twice: lexically (so `..`
 * and absolute paths outside the roots are refused before touching the disk) and on the real
 * path of the deepest existing ancestor (so a symlink inside a root that points outside is
 * refused too).
 */
export class Roots {
  readonly #roots: readonly string[]
  readonly #maxPathLength: number

  private constructor(roots: readonly string[], maxPathLength: number) {
    this.#roots = roots
    this.#maxPathLength = maxPathLength
  }

  /** Resolves each root's real path once (a root itself may be a symlink, e.g. /tmp on macOS). */
  static async create(roots: readonly string[], maxPathLength: number): Promise<Roots> {
    const real: string[] = []
    for (const root of roots) {
      try {
        real.push(await realpath(resolve(root)))
      } catch (error) {
        throw fsError(error, root, 'opening the root folder')
      }
    }
    return new Roots(real, maxPathLength)
  }

  get list(): readonly string[] {
    return this.#roots
  }

  /**
   * The absolute path a peer's `requested` path names, after the lexical check: relative paths are
   * taken from the first root; absolute ones must lie inside some root.
   */
  lexical(requested: string): { path: string; root: string } {
    if (this.#roots.length === 0) {
      throw new NoRootError('this server has no --root folders, so it refuses file operations')
    }
    if (requested.length === 0) throw new PathRefusedError('an empty path is not allowed')
    if (Buffer.byteLength(requested) > this.#maxPathLength) {
      throw new LimitExceededError(
        `a path of ${Buffer.byteLength(requested)} bytes is over the limit of ${this.#maxPathLength}`,
      )
    }
    if (requested.includes('\0')) throw new PathRefusedError('a path may not contain NUL bytes')
    const candidates = isAbsolute(requested) ? this.#roots : this.#roots.slice(0, 1)
    for (const root of candidates) {
      const path = resolve(root, requested)
      if (isInside(root, path)) return { path, root }
    }
    throw new PathRefusedError(
      `${JSON.stringify(requested)} is outside the allowed folders (${this.#roots.join(', ')}); use a path inside them`,
    )
  }

  /**
   * For reading: the real path of an existing file or directory, which must stay inside its root.
   */
  async forRead(requested: string): Promise<string> {
    const { path, root } = this.lexical(requested)
    let real: string
    try {
      real = await realpath(path)
    } catch (error) {
      throw fsError(error, requested, 'reading')
    }
    if (!isInside(root, real)) {
      throw new PathRefusedError(
        `${JSON.stringify(requested)} resolves through a symbolic link to outside ${root}`,
      )
    }
    return real
  }

  /**
   * For writing: creates the parent folders (mode 0755) and returns the real parent plus the final
   * name. The parent's real path is checked before and after creating folders, so a symlinked
   * ancestor that escapes is refused and mkdir never runs outside the root.
   */
  async forWrite(requested: string): Promise<{ parent: string; name: string; path: string }> {
    const { path, root } = this.lexical(requested)
    if (path === root) throw new PathRefusedError(`${JSON.stringify(requested)} names the root folder itself`)
    const parent = dirname(path)
    await checkExistingAncestor(parent, root, requested)
    try {
      await mkdir(parent, { recursive: true, mode: 0o755 })
    } catch (error) {
      throw fsError(error, parent, 'creating the folder')
    }
    const realParent = await realpath(parent)
    if (!isInside(root, realParent)) {
      throw new PathRefusedError(
        `${JSON.stringify(requested)} resolves through a symbolic link to outside ${root}`,
      )
    }
    const name = path.slice(parent.length + (parent.endsWith(sep) ? 0 : 1))
    return { parent: realParent, name, path: join(realParent, name) }
  }
}

async function checkExistingAncestor(start: string, root: string, requested: string): Promise<void> {
  let current = start
  for (;;) {
    try {
      await lstat(current)
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(error, current, 'checking')
      const up = dirname(current)
      if (up === current) break
      current = up
    }
  }
  const real = await realpath(current)
  if (!isInside(root, real)) {
    throw new PathRefusedError(
      `${JSON.stringify(requested)} resolves through a symbolic link to outside ${root}`,
    )
  }
}

/**
 * Validates a relative entry path inside a directory transfer (either direction): no absolute
 * paths, no `..`, no empty or `.` components, no NUL. Returns the components.
 */
export function entryComponents(relative: string, maxPathLength: number): string[] {
  if (Buffer.byteLength(relative) > maxPathLength) {
    throw new LimitExceededError(
      `an entry path of ${Buffer.byteLength(relative)} bytes is over ${maxPathLength}`,
    )
  }
  const parts = relative.split('/')
  if (
    relative.length === 0 ||
    relative.includes('\0') ||
    relative.includes('\\') ||
    parts.some((part) => part === '' || part === '.' || part === '..')
  ) {
    throw new PathRefusedError(
      `directory entry ${JSON.stringify(relative)} is not a plain relative path (no leading /, no . or .. parts)`,
    )
  }
  return parts
}
