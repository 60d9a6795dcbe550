import { once } from 'node:events'
import type { Writable } from 'node:stream'

/**
 * A streaming newc (SVR4 "070701") cpio writer with linuxkit's conventions: inodes counted from 721,
 * device 3:1 on every entry, nlink 2 for directories, check field 0, header+name and data each padded
 * to 4 bytes, a TRAILER!!! entry, and the archive padded to a multiple of 512 bytes.
 *
 * Written here because the only npm cpio packer (cpio-stream) packs odc, not newc, and is unmaintained.
 */

export type CpioEntryType = 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket'

const TYPE_BITS: Readonly<Record<CpioEntryType, number>> = {
  fifo: 0o010000,
  char: 0o020000,
  directory: 0o040000,
  block: 0o060000,
  file: 0o100000,
  symlink: 0o120000,
  socket: 0o140000,
}

export interface CpioEntry {
  /** Path inside the archive, without a leading slash. */
  readonly name: string
  readonly type: CpioEntryType
  /** Permission bits (setuid/setgid/sticky included); the type bits are added from `type`. */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Seconds since the Unix epoch. */
  readonly mtime: number
  /** Data size; for a symlink the byte length of its target. Hard-link names after the first have 0. */
  readonly size: number
  readonly nlink?: number
  /** Reuse the inode of an earlier entry (hard links); otherwise the next counter value. */
  readonly ino?: number
  readonly rdevmajor?: number
  readonly rdevminor?: number
}

/** linuxkit's first inode number. */
export const FIRST_INODE = 721
const DEV_MAJOR = 3
const DEV_MINOR = 1
const MAX_FIELD = 0xffffffff
const ZEROS = Buffer.alloc(512)

function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, '0')
}

/** Encodes a newc header followed by the NUL-terminated name and padding to a 4-byte boundary. */
export function encodeHeader(entry: CpioEntry & { ino: number; nlink: number }): Buffer {
  const name = Buffer.from(entry.name, 'utf8')
  for (const [field, value] of [
    ['size', entry.size],
    ['mtime', entry.mtime],
    ['uid', entry.uid],
    ['gid', entry.gid],
  ] as const) {
    if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD)
      throw new RangeError(`cpio ${field} of ${entry.name} is out of the newc range (0..2^32-1): ${value}`)
  }
  return encodeFields(name, [
    entry.ino,
    (entry.mode & 0o7777) | TYPE_BITS[entry.type],
    entry.uid,
    entry.gid,
    entry.nlink,
    entry.mtime,
    entry.size,
    DEV_MAJOR,
    DEV_MINOR,
    entry.rdevmajor ?? 0,
    entry.rdevminor ?? 0,
  ])
}

// The 11 numeric fields before namesize; namesize (with its NUL) and check (0) are added here.
function encodeFields(name: Buffer, fields: readonly number[]): Buffer {
  const namesize = name.length + 1
  const headerLen = 110 + namesize
  const buf = Buffer.alloc((headerLen + 3) & ~3)
  buf.write(`070701${[...fields, namesize, 0].map(hex8).join('')}`, 0, 'latin1')
  name.copy(buf, 110)
  return buf
}

const TRAILER = encodeFields(Buffer.from('TRAILER!!!'), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])

/** Writes entries to `sink` (with backpressure) and calls `onChunk` for every byte written (hashing). */
export class CpioWriter {
  #sink: Writable
  #onChunk: ((chunk: Buffer) => void) | undefined
  #nextIno = FIRST_INODE
  #written = 0
  #finished = false

  constructor(sink: Writable, { onChunk }: { onChunk?: (chunk: Buffer) => void } = {}) {
    this.#sink = sink
    this.#onChunk = onChunk
  }

  /** Bytes written so far. */
  get size(): number {
    return this.#written
  }

  /** Takes the next inode number without writing (for a hard-link group that shares one). */
  allocateInode(): number {
    return this.#nextIno++
  }

  async #write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return
    this.#written += chunk.length
    this.#onChunk?.(chunk)
    if (!this.#sink.write(chunk)) await once(this.#sink, 'drain')
  }

  /**
   * Adds one entry. `data` is a Buffer or a stream of exactly `entry.size` bytes (a stream that ends
   * early or runs long is an error: the archive would be corrupt). Returns the inode used.
   */
  async add(entry: CpioEntry, data?: Buffer | AsyncIterable<Uint8Array>): Promise<number> {
    if (this.#finished) throw new Error('cpio archive already finished')
    const ino = entry.ino ?? this.allocateInode()
    const nlink = entry.nlink ?? (entry.type === 'directory' ? 2 : 1)
    await this.#write(encodeHeader({ ...entry, ino, nlink }))
    let n = 0
    if (Buffer.isBuffer(data)) {
      n = data.length
      await this.#write(data)
    } else if (data) {
      for await (const chunk of data) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
        n += buf.length
        if (n > entry.size)
          throw new Error(`cpio entry ${entry.name}: data longer than its size ${entry.size}`)
        await this.#write(buf)
      }
    }
    if (n !== entry.size)
      throw new Error(`cpio entry ${entry.name}: ${n} bytes of data for size ${entry.size}`)
    const pad = (4 - (n % 4)) % 4
    if (pad) await this.#write(ZEROS.subarray(0, pad))
    return ino
  }

  /** Writes the TRAILER!!! entry and pads the archive to a multiple of 512 bytes. Does not end the sink. */
  async finish(): Promise<number> {
    await this.#write(TRAILER)
    const pad = (512 - (this.#written % 512)) % 512
    if (pad) await this.#write(ZEROS.subarray(0, pad))
    this.#finished = true
    return this.#written
  }
}
