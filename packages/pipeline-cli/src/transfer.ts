import { createHash, randomBytes } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import {
  chmod,
  type FileHandle,
  lstat,
  mkdir,
  open,
  opendir,
  readlink,
  rename,
  symlink,
  unlink,
} from 'node:fs/promises'
import { join } from 'node:path'
import { AtomicFile, MODE_MASK } from './atomic.js'
import {
  ChecksumMismatchError,
  ConnectionLostError,
  fsError,
  LimitExceededError,
  ProtocolViolationError,
  WrongTypeError,
} from './errors.js'
import { entryComponents, type Roots } from './paths.js'
import { type Channel, FileFrames, field, throwIfError } from './wire.js'

export const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER

/** Called as bytes move: the bytes done so far in this operation and, when known, the total. */
export type ProgressListener = (done: number, total: number | undefined) => void

export interface OpenedFile {
  handle: FileHandle
  size: number
  mode: number
}

/** Opens a regular file for sending without following a final symlink. */
export async function openForSend(path: string, label = path): Promise<OpenedFile> {
  let handle: FileHandle
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
  } catch (error) {
    throw fsError(error, label, 'reading')
  }
  try {
    const stat = await handle.stat()
    if (stat.isDirectory())
      throw new WrongTypeError(`${label} is a directory; use the -dir command for folders`)
    if (!stat.isFile()) throw new WrongTypeError(`${label} is not a regular file`)
    return { handle, size: stat.size, mode: stat.mode & MODE_MASK }
  } catch (error) {
    await handle.close()
    throw error
  }
}

/** Disk reads cover about this many bytes (whole frames), with READ_AHEAD of them in flight. */
const READ_SIZE = 1024 * 1024
const READ_AHEAD = 2

/**
 * Streams an opened file as `file` data frames, then `{type:'end', size, sha256}`. Each read
 * lands directly in frame layout (FileFrames), so the bytes are never copied before TLS encrypts
 * them. Memory stays at READ_AHEAD + 2 reads. A file that grows or shrinks while being read fails
 * the transfer.
 */
export async function sendFileBody(
  channel: Channel,
  file: OpenedFile,
  chunkSize: number,
  progress: { base: number; total: number | undefined; listener: ProgressListener | undefined },
  label: string,
): Promise<string> {
  const hash = createHash('sha256')
  const count = Math.max(1, Math.floor(READ_SIZE / chunkSize))
  const size = count * chunkSize
  let sent = 0
  let position = 0
  // Positional reads, so several can run at once in the thread pool while this one is sent.
  const read = (): Promise<{ frames: FileFrames; length: number }> => {
    const at = position
    position += size
    const frames = new FileFrames(chunkSize, count)
    const pending = file.handle.readv(frames.bodies, at).then(
      ({ bytesRead }) => ({ frames, length: bytesRead }),
      (error: unknown) => {
        throw fsError(error, label, 'reading')
      },
    )
    pending.catch(() => undefined)
    return pending
  }
  const ahead: Promise<{ frames: FileFrames; length: number }>[] = []
  // The previous read's frames, still going out: the next one is hashed meanwhile, instead of
  // the socket sitting idle while this thread hashes and the hash waiting while the socket drains.
  let sending: Promise<void> = Promise.resolve()
  try {
    for (let i = 0; i < READ_AHEAD; i++) ahead.push(read())
    for (;;) {
      const { frames, length } = await ahead.shift()!
      if (length === 0) break
      sent += length
      if (sent > file.size) break
      const last = length < size
      if (!last) ahead.push(read())
      for (const body of frames.fill(length)) hash.update(body)
      await sending
      progress.listener?.(progress.base + sent - length, progress.total)
      sending = channel.sendFrames(frames)
      sending.catch(() => undefined)
      if (last) break
    }
    await sending
    progress.listener?.(progress.base + sent, progress.total)
  } finally {
    await Promise.allSettled([...ahead, sending])
    await file.handle.close().catch(() => undefined)
  }
  if (sent !== file.size) {
    throw new ChecksumMismatchError(
      `${label} changed size while being sent (${file.size} → ${sent} bytes); send it again`,
    )
  }
  const sha256 = hash.digest('hex')
  await channel.sendControl({ type: 'end', size: sent, sha256 })
  return sha256
}

/**
 * Receives `file` data frames into an AtomicFile until `{type:'end'}`, then commits it. Any
 * failure (including more bytes than announced) removes the temp file.
 */
export async function receiveFileBody(
  channel: Channel,
  file: AtomicFile,
  announced: { size: number; mode: number },
  progress: { base: number; total: number | undefined; listener: ProgressListener | undefined },
): Promise<string> {
  try {
    for (;;) {
      const frame = await channel.next()
      // A clean end here is a vanished peer (killed, or its host gone), not a malformed message.
      if (!frame) throw new ConnectionLostError('the connection closed in the middle of a file')
      if (frame.kind === 'data') {
        if (frame.stream !== 'file')
          throw new ProtocolViolationError(`unexpected ${frame.stream} data in a file`)
        if (file.size + frame.length > announced.size) {
          throw new LimitExceededError(`the sender sent more than the ${announced.size} bytes it announced`)
        }
        await file.write(frame.pieces)
        progress.listener?.(progress.base + file.size, progress.total)
        continue
      }
      const message = frame.message
      // The sender may fail midway (a read error); its error is the one to report.
      throwIfError(message)
      if (message.type !== 'end')
        throw new ProtocolViolationError(`expected file data or end, got ${message.type}`)
      const size = field.integer(message, 'size', 0, MAX_FILE_SIZE)!
      const sha256 = field.string(message, 'sha256')!
      return (await file.commit({ size, sha256, mode: announced.mode })).sha256
    }
  } finally {
    await file.abort()
  }
}

export interface TreeStats {
  files: number
  dirs: number
  symlinks: number
  bytes: number
}

/** Total bytes of regular files under `dir` (for a progress bar); symlinks are not followed. */
export async function treeSize(dir: string): Promise<number> {
  let total = 0
  const handle = await opendir(dir)
  for await (const entry of handle) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await treeSize(path)
    else if (entry.isFile()) total += (await lstat(path)).size
  }
  return total
}

/**
 * Sends the tree under `dir` as a stream of entries: `{type:'dir'}`, `{type:'file'}` + data +
 * `{type:'end'}`, `{type:'symlink', target}`, then `{type:'done'}`. Symlinks are sent as links and
 * never followed; sockets, FIFOs and devices are skipped.
 */
export async function sendTree(
  channel: Channel,
  dir: string,
  chunkSize: number,
  listener: ProgressListener | undefined,
  total: number | undefined,
): Promise<TreeStats> {
  const stats: TreeStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 }
  const walk = async (absolute: string, relative: string): Promise<void> => {
    let handle: Awaited<ReturnType<typeof opendir>>
    try {
      handle = await opendir(absolute)
    } catch (error) {
      throw fsError(error, absolute, 'listing')
    }
    const names: string[] = []
    for await (const entry of handle) names.push(entry.name)
    names.sort()
    for (const name of names) {
      const path = join(absolute, name)
      const rel = relative === '' ? name : `${relative}/${name}`
      const stat = await lstat(path).catch((error: unknown) => {
        throw fsError(error, path, 'reading')
      })
      if (stat.isSymbolicLink()) {
        await channel.sendControl({ type: 'symlink', path: rel, target: await readlink(path) })
        stats.symlinks++
      } else if (stat.isDirectory()) {
        await channel.sendControl({ type: 'dir', path: rel, mode: stat.mode & MODE_MASK })
        stats.dirs++
        await walk(path, rel)
      } else if (stat.isFile()) {
        const file = await openForSend(path)
        await channel.sendControl({ type: 'file', path: rel, size: file.size, mode: file.mode })
        await sendFileBody(channel, file, chunkSize, { base: stats.bytes, total, listener }, path)
        stats.files++
        stats.bytes += file.size
      }
    }
  }
  await walk(dir, '')
  await channel.sendControl({ type: 'done', ...stats })
  return stats
}

/**
 * Receives a tree sent by sendTree into `base` (a Roots confined to the destination folder, so
 * entries cannot leave it: `..`, absolute paths and symlinked parents are refused). Folder modes
 * are applied at the end so that a read-only folder can still be filled.
 */
export async function receiveTree(
  channel: Channel,
  base: Roots,
  maxPathBytes: number,
  listener: ProgressListener | undefined,
): Promise<TreeStats> {
  const stats: TreeStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 }
  const modes: Array<[string, number]> = []
  for (;;) {
    const message = await channel.nextControl('a directory entry')
    if (message.type === 'done') break
    const rel = field.string(message, 'path')!
    entryComponents(rel, maxPathBytes)
    if (message.type === 'dir') {
      const mode = field.integer(message, 'mode', 0, 0o7777)!
      const { path } = await base.forWrite(rel)
      try {
        await mkdir(path, { mode: 0o700 })
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          throw fsError(error, rel, 'creating the folder')
        if (!(await lstat(path)).isDirectory()) throw new WrongTypeError(`${rel} exists and is not a folder`)
      }
      modes.push([path, mode & MODE_MASK])
      stats.dirs++
    } else if (message.type === 'file') {
      const size = field.integer(message, 'size', 0, MAX_FILE_SIZE)!
      const mode = field.integer(message, 'mode', 0, 0o7777)!
      const { parent, name } = await base.forWrite(rel)
      const file = await AtomicFile.create(parent, name)
      await receiveFileBody(channel, file, { size, mode }, { base: stats.bytes, total: undefined, listener })
      stats.files++
      stats.bytes += size
    } else if (message.type === 'symlink') {
      const target = field.string(message, 'target')!
      if (target.length === 0 || target.includes('\0') || Buffer.byteLength(target) > maxPathBytes) {
        throw new ProtocolViolationError(`symlink ${rel} has an empty, NUL-containing or over-long target`)
      }
      const { parent, name } = await base.forWrite(rel)
      // Created under a temp name and renamed, so an existing entry is replaced, never followed.
      const temp = join(parent, `.pipeline-${randomBytes(8).toString('hex')}.tmp`)
      try {
        await symlink(target, temp)
        await rename(temp, join(parent, name))
      } catch (error) {
        await unlink(temp).catch(() => undefined)
        throw fsError(error, rel, 'creating the symlink')
      }
      stats.symlinks++
    } else {
      throw new ProtocolViolationError(
        `unknown directory entry type ${JSON.stringify(message.type).slice(0, 64)}`,
      )
    }
  }
  for (const [path, mode] of modes.reverse()) {
    await chmod(path, mode).catch((error: unknown) => {
      throw fsError(error, path, 'setting the mode of')
    })
  }
  return stats
}
