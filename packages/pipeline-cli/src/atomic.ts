import { createHash, randomBytes } from 'node:crypto'
import { type Dirent, constants as fsConstants } from 'node:fs'
import { type FileHandle, lstat, open, readdir, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { ChecksumMismatchError, fsError } from './errors.js'

/** Permission bits kept from the sender; setuid, setgid and sticky are dropped on purpose. */
export const MODE_MASK = 0o777
const MAX_IN_FLIGHT = 8 * 1024 * 1024
/** The exact name of an in-progress upload; the sweep removes nothing else. */
const TEMP_NAME = /^\.pipeline-[0-9a-f]{16}\.tmp$/
/** Bounds on the start-up sweep, so a huge root cannot stall the server's start. */
const SWEEP_MAX_ENTRIES = 200_000
const SWEEP_MAX_DEPTH = 64

/**
 * A file written atomically: bytes go to a private temp file in the destination folder (0600,
 * O_EXCL, O_NOFOLLOW); commit() checks size and SHA-256, applies the mode, fsyncs, renames over
 * the destination and fsyncs the folder. abort() removes the temp file. An interrupted transfer
 * therefore never leaves a partial or corrupt destination.
 */
export class AtomicFile {
  readonly #handle: FileHandle
  readonly #temp: string
  readonly #destination: string
  readonly #parent: string
  readonly #hash = createHash('sha256')
  #size = 0
  #state: 'open' | 'committed' | 'aborted' = 'open'
  // Disk writes run behind the network: up to MAX_IN_FLIGHT bytes are queued, so receiving the
  // next chunk overlaps with writing this one while memory stays bounded.
  #tail: Promise<void> = Promise.resolve()
  #inFlight = 0
  #pending: Promise<void>[] = []
  #error: Error | undefined

  private constructor(handle: FileHandle, temp: string, parent: string, destination: string) {
    this.#handle = handle
    this.#temp = temp
    this.#parent = parent
    this.#destination = destination
  }

  static async create(parent: string, name: string): Promise<AtomicFile> {
    const temp = join(parent, `.pipeline-${randomBytes(8).toString('hex')}.tmp`) // matches TEMP_NAME
    const destination = join(parent, name)
    try {
      const handle = await open(
        temp,
        fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
        0o600,
      )
      return new AtomicFile(handle, temp, parent, destination)
    } catch (error) {
      throw fsError(error, destination, 'creating')
    }
  }

  get size(): number {
    return this.#size
  }

  get destination(): string {
    return this.#destination
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#error) throw this.#error
    this.#hash.update(bytes)
    this.#size += bytes.length
    this.#inFlight += bytes.length
    this.#tail = this.#tail.then(async () => {
      try {
        if (this.#error || this.#state !== 'open') return
        let offset = 0
        while (offset < bytes.length) {
          const { bytesWritten } = await this.#handle.write(bytes, offset, bytes.length - offset)
          offset += bytesWritten
        }
      } catch (error) {
        this.#error = fsError(error, this.#destination, 'writing')
      } finally {
        this.#inFlight -= bytes.length
        // Writes finish in queue order, so the finished one is at the head.
        this.#pending.shift()
      }
    })
    this.#pending.push(this.#tail)
    // Wait for the oldest writes only, so the network keeps flowing while the disk catches up.
    while (this.#inFlight > MAX_IN_FLIGHT && this.#pending.length > 0) await this.#pending[0]
    if (this.#error) throw this.#error
  }

  async #flush(): Promise<void> {
    await this.#tail
    if (this.#error) throw this.#error
  }

  /** Verifies and moves the file into place; on any failure the temp file is removed. */
  async commit(expected: { size: number; sha256: string; mode: number }): Promise<{ sha256: string }> {
    const sha256 = this.#hash.digest('hex')
    try {
      await this.#flush()
      if (this.#size !== expected.size || sha256 !== expected.sha256) {
        throw new ChecksumMismatchError(
          `${this.#destination}: received ${this.#size} bytes with SHA-256 ${sha256}, but the sender sent ${expected.size} bytes with SHA-256 ${expected.sha256}; the destination was left unchanged`,
        )
      }
      try {
        await this.#handle.chmod(expected.mode & MODE_MASK)
        await this.#handle.sync()
        await this.#handle.close()
        await rename(this.#temp, this.#destination)
      } catch (error) {
        throw fsError(error, this.#destination, 'saving')
      }
      this.#state = 'committed'
      await syncFolder(this.#parent)
      return { sha256 }
    } finally {
      if (this.#state !== 'committed') await this.abort()
    }
  }

  /** Idempotent: closes and removes the temp file. */
  async abort(): Promise<void> {
    if (this.#state !== 'open') return
    this.#state = 'aborted'
    await this.#tail
    await this.#handle.close().catch(() => undefined)
    await unlink(this.#temp).catch(() => undefined)
  }
}

/** fsync a folder so a rename in it survives a crash; some filesystems refuse, which is fine. */
export async function syncFolder(path: string): Promise<void> {
  try {
    const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY)
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch {
    // Durability of the folder entry is best effort (EINVAL on some filesystems).
  }
}

/**
 * Removes upload temp files a killed server left behind (SIGKILL skips abort()). Conservative on
 * purpose: only regular files (never symlinks) named exactly `.pipeline-<16 hex>.tmp`, unchanged
 * for `olderThanMs`; it walks real folders under each root, never follows symlinks, never leaves
 * the root's filesystem, and stops after SWEEP_MAX_ENTRIES entries or SWEEP_MAX_DEPTH levels.
 * Unreadable folders are skipped. Returns the paths removed.
 */
export async function sweepStaleTemps(
  roots: readonly string[],
  olderThanMs: number,
  now = Date.now(),
): Promise<{ removed: string[]; truncated: boolean }> {
  const removed: string[] = []
  let visited = 0
  for (const root of roots) {
    let device: number
    try {
      device = (await lstat(root)).dev
    } catch {
      continue
    }
    const stack: { path: string; depth: number }[] = [{ path: root, depth: 0 }]
    while (stack.length > 0) {
      const { path, depth } = stack.pop()!
      let entries: Dirent[]
      try {
        entries = await readdir(path, { withFileTypes: true })
      } catch {
        continue
      }
      for (const entry of entries) {
        if (++visited > SWEEP_MAX_ENTRIES) return { removed, truncated: true }
        const full = join(path, entry.name)
        try {
          if (entry.isDirectory()) {
            // Dirent types come from lstat semantics: a symlink to a folder is not a directory here.
            if (depth + 1 < SWEEP_MAX_DEPTH && (await lstat(full)).dev === device) {
              stack.push({ path: full, depth: depth + 1 })
            }
          } else if (entry.isFile() && TEMP_NAME.test(entry.name)) {
            const stat = await lstat(full)
            if (stat.isFile() && now - stat.mtimeMs >= olderThanMs) {
              await unlink(full)
              removed.push(full)
            }
          }
        } catch {
          // Gone meanwhile or not ours to touch: leave it.
        }
      }
    }
  }
  return { removed, truncated: false }
}
