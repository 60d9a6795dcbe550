import { createHash, randomBytes } from 'node:crypto'
import { type Dirent, constants as fsConstants } from 'node:fs'
import { type FileHandle, lstat, open, readdir, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { ChecksumMismatchError, fsError } from './errors.js'

/** Permission bits kept from the sender; setuid, setgid and sticky are dropped on purpose. */
export const MODE_MASK = 0o777
const MAX_IN_FLIGHT = 8 * 1024 * 1024
/**
 * Flush to disk in the background every this many bytes. Without it the whole file sits dirty in
 * the page cache until commit()'s fsync, which then writes all of it while both ends wait (up to
 * seconds per GiB on a virtual disk); flushing as we go overlaps that with the network.
 */
const SYNC_EVERY = 32 * 1024 * 1024
/** Buffers per writev (well under IOV_MAX). */
const MAX_BATCH = 256
/**
 * Bytes per writev: queued bytes start a write at this size, and no write is larger. Linux sizes
 * page-cache folios by the write's length, and from 512 KiB up it asks for large folios, whose
 * allocation is slow where the hypervisor takes free memory back (a Firecracker guest: 1 GiB in
 * 1 MiB writes cost 2.5 s of kernel time, in 256 KiB writes 0.45 s). 256 KiB still keeps the
 * thread-pool round trips to 4096 per GiB.
 */
const WRITE_BATCH = 256 * 1024
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
  #queue: Uint8Array[] = []
  /** Bytes in #queue; #inFlight adds those being written. */
  #queued = 0
  #inFlight = 0
  #writer: Promise<void> | undefined
  #room: (() => void) | undefined
  #error: Error | undefined
  #unsynced = 0
  #syncing: Promise<void> | undefined

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

  /** Queues bytes (one buffer, or the pieces of one frame) for the disk, and hashes them. */
  async write(bytes: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (this.#error) throw this.#error
    const pieces = bytes instanceof Uint8Array ? [bytes] : bytes
    for (const piece of pieces) {
      this.#hash.update(piece)
      this.#size += piece.length
      this.#inFlight += piece.length
      this.#queued += piece.length
      // A large buffer goes out in WRITE_BATCH slices, like everything else.
      for (let at = 0; at < piece.length; at += WRITE_BATCH) {
        this.#queue.push(piece.length <= WRITE_BATCH ? piece : piece.subarray(at, at + WRITE_BATCH))
      }
    }
    // Batched: one writev per WRITE_BATCH bytes, not one per network chunk.
    if (this.#queued >= WRITE_BATCH) this.#writer ??= this.#writeQueued()
    // Wait only when the disk is MAX_IN_FLIGHT behind, so the network keeps flowing meanwhile.
    while (this.#inFlight > MAX_IN_FLIGHT && !this.#error && this.#state === 'open') {
      await new Promise<void>((resolve) => {
        this.#room = resolve
      })
    }
    if (this.#error) throw this.#error
  }

  /**
   * The one writer: hands the queue to the disk in writevs of up to WRITE_BATCH bytes, so a burst
   * of small network chunks costs one thread-pool round trip instead of one each.
   */
  async #writeQueued(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#error && this.#state === 'open') {
        const batch = this.#takeBatch()
        const length = await writeAll(this.#handle, batch)
        this.#inFlight -= length
        this.#unsynced += length
        if (this.#unsynced >= SYNC_EVERY && !this.#syncing) this.#syncInBackground()
        this.#wake()
      }
    } catch (error) {
      this.#error ??= fsError(error, this.#destination, 'writing')
    } finally {
      this.#writer = undefined
      this.#wake()
    }
  }

  /** The next writev's buffers: whole pieces, up to WRITE_BATCH bytes (at least one piece). */
  #takeBatch(): Uint8Array[] {
    let count = 0
    let bytes = 0
    for (const piece of this.#queue) {
      if (count === MAX_BATCH || (count > 0 && bytes + piece.length > WRITE_BATCH)) break
      bytes += piece.length
      count++
    }
    this.#queued -= bytes
    return this.#queue.splice(0, count)
  }

  #wake(): void {
    const room = this.#room
    this.#room = undefined
    room?.()
  }

  /** One fdatasync at a time, outside the write queue, so writes go on while it runs. */
  #syncInBackground(): void {
    this.#unsynced = 0
    this.#syncing = this.#handle
      .datasync()
      .catch((error: unknown) => {
        this.#error ??= fsError(error, this.#destination, 'writing')
      })
      .finally(() => {
        this.#syncing = undefined
      })
  }

  async #flush(): Promise<void> {
    if (this.#queue.length > 0) this.#writer ??= this.#writeQueued()
    while (this.#writer) await this.#writer
    await this.#syncing
    if (this.#error) throw this.#error
  }

  /** Verifies and moves the file into place; on any failure the temp file is removed. */
  async commit(expected: { size: number; sha256: string; mode: number }): Promise<{ sha256: string }> {
    try {
      const sha256 = this.#hash.digest('hex')
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
    await this.#writer
    await this.#syncing
    await this.#handle.close().catch(() => undefined)
    await unlink(this.#temp).catch(() => undefined)
  }
}

/** Writes every byte of `buffers` at the current position (writev may write less than asked). */
async function writeAll(handle: FileHandle, buffers: Uint8Array[]): Promise<number> {
  let total = 0
  for (const buffer of buffers) total += buffer.length
  let pending = buffers
  let written = 0
  while (written < total) {
    const { bytesWritten } = await handle.writev(pending)
    if (bytesWritten === 0) throw Object.assign(new Error('the disk accepted no bytes'), { code: 'EIO' })
    written += bytesWritten
    if (written < total) pending = remainder(pending, bytesWritten)
  }
  return total
}

function remainder(buffers: Uint8Array[], skip: number): Uint8Array[] {
  const rest: Uint8Array[] = []
  for (const buffer of buffers) {
    if (skip >= buffer.length) skip -= buffer.length
    else {
      rest.push(skip > 0 ? buffer.subarray(skip) : buffer)
      skip = 0
    }
  }
  return rest
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
