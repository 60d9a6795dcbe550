/**
 * File-hash attestation: watch folders recursively, hash each file with SHA3-512 once it has been
 * written (Node exposes no IN_CLOSE_WRITE, so "closed" is a quiet period with stable size and
 * mtime), and sign a statement {path, hash} with the enclave's attested key.
 */

import { createHash } from 'node:crypto'
import { createReadStream, type FSWatcher, readFileSync, watch } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { join, relative, resolve, sep } from 'node:path'
import picomatch from 'picomatch'
import type { Logger } from 'pino'
import type { StatementSigner } from './statement.js'

export interface FileHashRecord {
  readonly path: string
  readonly hash: string
  readonly size: number
  readonly hashedAt: number
  /** COSE_Sign1 (ES384) over the statement JSON. */
  readonly statement: Uint8Array
  /** The attestation document binding the statement key (public_key = its SPKI DER). */
  readonly document: Uint8Array
}

export interface FileHashOptions {
  readonly roots: readonly string[]
  /** Extra ignore globs (gitignore-like: a pattern without "/" matches a name anywhere). */
  readonly ignore: readonly string[]
  /** File in each root whose lines are more ignore globs. */
  readonly ignoreFile: string
  /** Quiet period after the last change before a file is hashed, ms. */
  readonly settleMs: number
  /** At most this many files are tracked; more are logged and skipped. */
  readonly maxFiles: number
}

export interface FileHashes {
  list(): FileHashRecord[]
  get(path: string): FileHashRecord | undefined
  /** Resolves when no file is waiting to be hashed (tests, shutdown). */
  idle(): Promise<void>
  close(): void
}

function sha3(path: string): Promise<{ hash: string; size: number }> {
  return new Promise((done, fail) => {
    const hash = createHash('sha3-512')
    let size = 0
    createReadStream(path)
      .on('data', (chunk: string | Buffer) => {
        size += chunk.length
        hash.update(chunk)
      })
      .on('error', fail)
      .on('end', () => done({ hash: hash.digest('hex'), size }))
  })
}

function ignorePatterns(root: string, options: FileHashOptions): (rel: string) => boolean {
  let fromFile: string[] = []
  try {
    fromFile = readFileSync(join(root, options.ignoreFile), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
  } catch {
    // no ignore file in this root
  }
  const patterns = [...options.ignore, ...fromFile].map((p) => p.replace(/^\//, '').replace(/\/$/, '/**'))
  if (patterns.length === 0) return () => false
  const anywhere = picomatch(
    patterns.filter((p) => !p.includes('/')),
    { dot: true, basename: true },
  )
  const anchored = picomatch(
    patterns.filter((p) => p.includes('/')),
    { dot: true },
  )
  // a file is ignored when it or any folder above it matches
  return (rel) => {
    const parts = rel.split(sep)
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/')
      if (anywhere(prefix) || anchored(prefix)) return true
    }
    return false
  }
}

export async function startFileHashes(
  options: FileHashOptions,
  signer: StatementSigner,
  logger: Logger,
): Promise<FileHashes> {
  const records = new Map<string, FileHashRecord>()
  const timers = new Map<string, NodeJS.Timeout>()
  const watchers: FSWatcher[] = []
  let queue: Promise<void> = Promise.resolve()
  let pending = 0
  let idleWaiters: (() => void)[] = []
  let state: 'running' | 'closed' = 'running'
  const roots = options.roots.map((r) => resolve(r))
  const ignored = new Map(roots.map((root) => [root, ignorePatterns(root, options)]))

  const settle = () => {
    if (pending === 0 && timers.size === 0) {
      for (const w of idleWaiters) w()
      idleWaiters = []
    }
  }

  async function hashFile(path: string, expect?: { size: number; mtimeMs: number }): Promise<void> {
    let info: Awaited<ReturnType<typeof lstat>>
    try {
      info = await lstat(path)
    } catch {
      if (records.delete(path)) logger.info({ path }, 'file removed')
      return
    }
    if (!info.isFile()) return
    if (expect && (info.size !== expect.size || info.mtimeMs !== expect.mtimeMs)) {
      schedule(path) // still being written
      return
    }
    if (!records.has(path) && records.size >= options.maxFiles) {
      logger.warn({ path, maxFiles: options.maxFiles }, 'file limit reached; not hashing')
      return
    }
    const { hash, size } = await sha3(path)
    const signed = await signer.sign({ path, hash, algorithm: 'SHA3-512', size })
    records.set(path, { path, hash, size, hashedAt: Date.now(), ...signed })
    logger.info({ path, hash }, 'file hashed')
  }

  function enqueue(path: string, expect?: { size: number; mtimeMs: number }): void {
    pending++
    queue = queue
      .then(() => (state === 'running' ? hashFile(path, expect) : undefined))
      .catch((err: unknown) => logger.warn({ err, path }, 'cannot hash file'))
      .finally(() => {
        pending--
        settle()
      })
  }

  function schedule(path: string): void {
    if (state !== 'running') return
    clearTimeout(timers.get(path))
    // remember size and mtime now; hash only if they are unchanged after the quiet period
    lstat(path).then(
      (info) => {
        clearTimeout(timers.get(path))
        timers.set(
          path,
          setTimeout(() => {
            timers.delete(path)
            enqueue(path, { size: info.size, mtimeMs: info.mtimeMs })
          }, options.settleMs),
        )
      },
      () => {
        timers.delete(path)
        enqueue(path) // gone: hashFile drops the record
      },
    )
    // a placeholder while lstat runs, so idle() does not resolve in between
    timers.set(
      path,
      setTimeout(() => {}, options.settleMs),
    )
  }

  async function scan(root: string, dir: string): Promise<void> {
    const isIgnored = ignored.get(root)!
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (isIgnored(relative(root, path))) continue
      if (entry.isDirectory()) await scan(root, path)
      else if (entry.isFile()) enqueue(path)
    }
  }

  for (const root of roots) {
    const info = await lstat(root).catch(() => undefined)
    if (!info?.isDirectory()) throw new Error(`watch folder ${root} is not a directory`)
    const watcher = watch(root, { recursive: true }, (_event, filename) => {
      if (!filename) return
      const path = join(root, filename.toString())
      if (ignored.get(root)!(relative(root, path))) return
      schedule(path)
    })
    watcher.on('error', (err) => logger.warn({ err, root }, 'watcher error'))
    watchers.push(watcher)
    await scan(root, root)
  }

  return {
    list: () => [...records.values()].sort((a, b) => a.path.localeCompare(b.path)),
    get: (path) => records.get(resolve(path)),
    idle: () =>
      new Promise<void>((done) => {
        idleWaiters.push(done)
        settle()
      }),
    close() {
      state = 'closed'
      for (const w of watchers) w.close()
      for (const t of timers.values()) clearTimeout(t)
      timers.clear()
      settle()
    },
  }
}
