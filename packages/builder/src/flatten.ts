import { posix } from 'node:path'
import type { Readable } from 'node:stream'
import { extract, type Header } from 'tar-stream'
import type { CpioEntryType, CpioWriter } from './cpio.js'
import { AbortedError, LayerInvalidError } from './errors.js'
import type { LayerSource } from './image.js'

/** mtime (2017-04-18T16:30:00Z) linuxkit gives the entries it creates itself. */
export const GENERATED_MTIME = 1492533000

type NodeType = CpioEntryType | 'link'

interface FsNode {
  readonly type: NodeType
  readonly mode: number
  readonly uid: number
  readonly gid: number
  readonly mtime: number
  readonly size: number
  /** Symlink target as written; for a hard link the key (`layer:index`) of the entry holding the data. */
  readonly linkname?: string
  readonly devmajor?: number
  readonly devminor?: number
  /** Layer number and entry number in that layer's tar; index -1 for directories made up for missing parents. */
  readonly layer: number
  readonly index: number
}

/** A directory made up for a missing parent; it belongs to the layer that needed it. */
function syntheticDir(layer: number): FsNode {
  return { type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: GENERATED_MTIME, size: 0, layer, index: -1 }
}

const TAR_TYPES: Readonly<Record<string, NodeType>> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'directory',
  symlink: 'symlink',
  link: 'link',
  'character-device': 'char',
  'block-device': 'block',
  fifo: 'fifo',
}

// Bounds on what a hostile image can make the merged tree hold (about 200 bytes of memory per path).
const MAX_PATHS = 2_000_000
const MAX_PATH_BYTES = 4096

const WHITEOUT = '.wh.'
const OPAQUE = '.wh..wh..opq'

/** `./a//b/` → `a/b`; the root is ''. A `..` component would escape the rootfs: refused. */
export function normalizeEntryPath(name: string, layer: string): string {
  const parts: string[] = []
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') throw new LayerInvalidError(layer, `entry "${name}" escapes the root with ".."`)
    parts.push(part)
  }
  return parts.join('/')
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/')
  return i === -1 ? '' : path.slice(0, i)
}

/** Streams the data of tar entry `index` of `source` into `sink` (the rest of the layer is skipped). */
export async function copyEntryData(
  source: LayerSource,
  index: number,
  sink: (body: AsyncIterable<Uint8Array>) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let found = false
  await eachEntry(
    await source.open(),
    async (_h, i, body) => {
      if (i !== index) return
      found = true
      await sink(body)
    },
    source.id,
    signal,
  )
  if (!found) throw new LayerInvalidError(source.id, `entry ${index} vanished between two reads of the layer`)
}

/** Calls `onEntry` for each member of one layer tar, in order, draining what it does not read. */
async function eachEntry(
  stream: Readable,
  onEntry: (header: Header, index: number, body: AsyncIterable<Uint8Array>) => Promise<void> | void,
  layer: string,
  signal?: AbortSignal,
): Promise<void> {
  const ex = extract()
  stream.on('error', (err) => ex.destroy(err))
  stream.pipe(ex)
  // A stalled source (a slow disk, a pipe) must not delay cancellation until its next entry.
  const onAbort = () => ex.destroy(new AbortedError(signal?.reason))
  signal?.addEventListener('abort', onAbort, { once: true })
  let index = 0
  try {
    if (signal?.aborted) throw new AbortedError(signal.reason)
    for await (const entry of ex) {
      if (signal?.aborted) throw new AbortedError(signal.reason)
      await onEntry(entry.header, index++, entry as unknown as AsyncIterable<Uint8Array>)
      entry.resume()
    }
  } catch (err) {
    stream.destroy()
    if (err instanceof LayerInvalidError || err instanceof AbortedError) throw err
    if ((err as { code?: string }).code?.startsWith('ENCLAVE_')) throw err
    throw new LayerInvalidError(layer, `not a readable tar: ${(err as Error).message}`, { cause: err })
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * The merged filesystem of a stack of layers (OCI/Docker semantics: later layers win; `.wh.NAME`
 * removes NAME below; `.wh..wh..opq` empties a directory of what lower layers put there; a
 * non-directory replacing a directory removes its subtree). Holds metadata only, never file data.
 */
export class LayerTree {
  readonly #nodes = new Map<string, FsNode>()
  readonly #children = new Map<string, Set<string>>()

  get size(): number {
    return this.#nodes.size
  }

  get(path: string): FsNode | undefined {
    return this.#nodes.get(path)
  }

  /**
   * The node at an absolute or relative image path, following symlinks (parents and the last
   * component), with the `layer:index` key of the tar entry that holds its data.
   */
  lookup(path: string, layer = 'lookup'): { path: string; node: FsNode; dataKey: string } | undefined {
    let at = this.#resolveParents(normalizeEntryPath(path, layer), layer)
    for (let hops = 0; hops <= 40; hops++) {
      const node = this.#nodes.get(at)
      if (!node) return undefined
      if (node.type !== 'symlink') {
        const dataKey = node.type === 'link' ? node.linkname! : `${node.layer}:${node.index}`
        return { path: at, node, dataKey }
      }
      const target = node.linkname ?? ''
      const base = target.startsWith('/') ? '' : parentOf(at)
      const joined = posix.normalize(`/${base}/${target}`).slice(1).replace(/\/$/, '')
      at = this.#resolveParents(joined, layer)
    }
    throw new LayerInvalidError(layer, `too many levels of symbolic links in "${path}"`)
  }

  paths(): IterableIterator<string> {
    return this.#nodes.keys()
  }

  #remove(path: string): void {
    const kids = this.#children.get(path)
    if (kids) {
      for (const kid of kids) this.#remove(kid)
      this.#children.delete(path)
    }
    this.#nodes.delete(path)
    this.#children.get(parentOf(path))?.delete(path)
  }

  #set(path: string, node: FsNode): void {
    const old = this.#nodes.get(path)
    if (old?.type === 'directory' && node.type !== 'directory') this.#remove(path)
    this.#nodes.set(path, node)
    const parent = parentOf(path)
    let kids = this.#children.get(parent)
    if (!kids) {
      kids = new Set()
      this.#children.set(parent, kids)
    }
    kids.add(path)
  }

  /**
   * Follows symlinks among `path`'s parents, as extracting the tar onto the lower layers would (a
   * merged-/usr image has `sbin -> usr/sbin`, so `sbin/odyn` lands in `usr/sbin`). Targets are
   * resolved inside the image: `..` stops at its root.
   */
  #resolveParents(path: string, layer: string): string {
    let parts = path.split('/')
    let hops = 0
    for (let i = 0; i < parts.length - 1; i++) {
      const node = this.#nodes.get(parts.slice(0, i + 1).join('/'))
      if (node?.type !== 'symlink') continue
      if (++hops > 40) throw new LayerInvalidError(layer, `too many levels of symbolic links in "${path}"`)
      const target = node.linkname ?? ''
      const resolved: string[] = target.startsWith('/') ? [] : parts.slice(0, i)
      for (const seg of target.split('/')) {
        if (seg === '' || seg === '.') continue
        if (seg === '..') resolved.pop()
        else resolved.push(seg)
      }
      parts = [...resolved, ...parts.slice(i + 1)]
      i = -1 // the new prefix may hold symlinks too
    }
    return parts.join('/')
  }

  #ensureParents(path: string, layer: number): void {
    const parts = path.split('/')
    let at = ''
    for (let i = 0; i < parts.length - 1; i++) {
      at = at ? `${at}/${parts[i]}` : parts[i]!
      const node = this.#nodes.get(at)
      if (node?.type !== 'directory') this.#set(at, syntheticDir(layer))
    }
  }

  /** Reads one layer's headers (data is skipped) and merges them in. Layers must come bottom first. */
  async addLayer(layerNo: number, source: LayerSource, signal?: AbortSignal): Promise<void> {
    const stream = await source.open()
    await eachEntry(
      stream,
      (h, index) => {
        if (this.#nodes.size >= MAX_PATHS)
          throw new LayerInvalidError(
            source.id,
            `the image holds more than ${MAX_PATHS} paths; refusing to go on`,
          )
        if (h.name.length > MAX_PATH_BYTES)
          throw new LayerInvalidError(
            source.id,
            `an entry name is ${h.name.length} bytes long (limit ${MAX_PATH_BYTES})`,
          )
        const named = normalizeEntryPath(h.name, source.id)
        if (named === '') return // the root itself: rootfs/ is generated
        const path = this.#resolveParents(named, source.id)
        if (path === '') return
        const base = posix.basename(path)
        const dir = parentOf(path)
        if (base === OPAQUE) {
          for (const kid of [...(this.#children.get(dir) ?? [])]) {
            if (this.#nodes.get(kid)!.layer < layerNo) this.#remove(kid)
          }
          return
        }
        if (base.startsWith(WHITEOUT)) {
          const target = dir ? `${dir}/${base.slice(WHITEOUT.length)}` : base.slice(WHITEOUT.length)
          const node = this.#nodes.get(target)
          if (node && node.layer < layerNo) this.#remove(target)
          return
        }
        const type = TAR_TYPES[h.type ?? 'file']
        if (!type) throw new LayerInvalidError(source.id, `entry "${h.name}" has unsupported type ${h.type}`)
        let linkname: string | undefined
        if (type === 'symlink') linkname = h.linkname ?? ''
        if (type === 'link') {
          const target = this.#resolveParents(normalizeEntryPath(h.linkname ?? '', source.id), source.id)
          let node = this.#nodes.get(target)
          if (node?.type === 'link' && node.layer === layerNo) {
            const [, i] = node.linkname!.split(':')
            node = { ...node, type: 'file', index: Number(i) }
          }
          if (!node || node.layer !== layerNo || node.type !== 'file')
            throw new LayerInvalidError(
              source.id,
              `hard link "${h.name}" points at "${h.linkname}", which is not a regular file earlier in the same layer`,
            )
          linkname = `${layerNo}:${node.index}`
        }
        this.#ensureParents(path, layerNo)
        this.#set(path, {
          type,
          mode: (h.mode ?? 0o644) & 0o7777,
          uid: h.uid ?? 0,
          gid: h.gid ?? 0,
          mtime: Math.max(0, Math.floor((h.mtime?.getTime() ?? 0) / 1000)),
          size: type === 'file' ? (h.size ?? 0) : 0,
          ...(linkname !== undefined ? { linkname } : {}),
          ...(type === 'char' || type === 'block'
            ? { devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0 }
            : {}),
          layer: layerNo,
          index,
        })
      },
      source.id,
      signal,
    )
  }
}

export interface EmitOptions {
  /** Prefix for every archive name, e.g. `rootfs/`. */
  readonly prefix: string
  readonly signal?: AbortSignal
  /** Called after each file and each layer is written, with bytes of file data so far. */
  readonly onProgress?: (dataBytes: number) => void
}

/**
 * Writes the merged tree into `cpio`, reading each layer once more for file data, in layer order.
 * Parents always precede children (a directory whose final version comes from a later layer is
 * written early, with its final metadata), so the kernel's initramfs unpacker can create every
 * path. Hard links share one inode; the first name carries the data. The order depends only on
 * the layers' bytes, so the same image always gives the same archive.
 */
export async function emitTree(
  tree: LayerTree,
  layers: readonly LayerSource[],
  cpio: CpioWriter,
  { prefix, signal, onProgress }: EmitOptions,
): Promise<void> {
  // For each tar entry whose data survives: the names that must carry it (hard-link group).
  const groups = new Map<string, string[]>()
  const winners = new Map<string, string>()
  for (const path of tree.paths()) {
    const node = tree.get(path)!
    if (node.index < 0) continue
    if (node.type === 'link') {
      const key = node.linkname!
      const group = groups.get(key)
      if (group) group.push(path)
      else groups.set(key, [path])
      continue
    }
    const key = `${node.layer}:${node.index}`
    winners.set(key, path)
  }
  for (const [key, names] of groups) {
    names.sort()
    const own = winners.get(key)
    if (own !== undefined) names.unshift(own)
  }

  const emitted = new Set<string>()
  const writeMeta = async (path: string, node: FsNode): Promise<void> => {
    const base = {
      name: `${prefix}${path}`,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      mtime: node.mtime,
    }
    if (node.type === 'symlink') {
      const target = Buffer.from(node.linkname ?? '', 'utf8')
      await cpio.add({ ...base, type: 'symlink', size: target.length }, target)
    } else {
      await cpio.add({
        ...base,
        type: node.type as CpioEntryType,
        size: 0,
        ...(node.devmajor !== undefined ? { rdevmajor: node.devmajor, rdevminor: node.devminor ?? 0 } : {}),
      })
    }
    emitted.add(path)
  }
  const ensureParents = async (path: string): Promise<void> => {
    const parts = path.split('/')
    let at = ''
    for (let i = 0; i < parts.length - 1; i++) {
      at = at ? `${at}/${parts[i]}` : parts[i]!
      if (!emitted.has(at)) await writeMeta(at, tree.get(at)!)
    }
  }

  let dataBytes = 0
  for (let layerNo = 0; layerNo < layers.length; layerNo++) {
    const source = layers[layerNo]!
    await eachEntry(
      await source.open(),
      async (h, index, body) => {
        const key = `${layerNo}:${index}`
        const names =
          groups.get(key) ??
          (winners.has(key) && tree.get(winners.get(key)!)!.type === 'file' ? [winners.get(key)!] : undefined)
        if (names) {
          const first = names[0]!
          const node = tree.get(first)!
          const fileNode = node.type === 'link' ? { ...node, type: 'file' as const, size: h.size ?? 0 } : node
          for (const name of names) await ensureParents(name)
          const ino = cpio.allocateInode()
          const common = { type: 'file' as const, nlink: names.length, ino }
          await cpio.add(
            {
              ...common,
              name: `${prefix}${first}`,
              mode: fileNode.mode,
              uid: fileNode.uid,
              gid: fileNode.gid,
              mtime: fileNode.mtime,
              size: h.size ?? 0,
            },
            body,
          )
          dataBytes += h.size ?? 0
          onProgress?.(dataBytes)
          emitted.add(first)
          for (const name of names.slice(1)) {
            const n = tree.get(name)!
            await cpio.add({
              ...common,
              name: `${prefix}${name}`,
              mode: fileNode.mode,
              uid: n.uid,
              gid: n.gid,
              mtime: n.mtime,
              size: 0,
            })
            emitted.add(name)
          }
          return
        }
        const path = winners.get(key)
        if (path === undefined || emitted.has(path)) return
        const node = tree.get(path)!
        if (node.type === 'file' || node.type === 'link') return
        await ensureParents(path)
        await writeMeta(path, node)
      },
      source.id,
      signal,
    )
    onProgress?.(dataBytes)
  }
  // Directories made up for missing parents whose children all went away, in sorted order.
  const rest = [...tree.paths()].filter((p) => !emitted.has(p)).sort()
  for (const path of rest) {
    const node = tree.get(path)!
    if (node.type === 'file' || node.type === 'link')
      throw new LayerInvalidError(
        layers[node.layer]?.id ?? 'unknown',
        `internal: data of ${path} was never written`,
      )
    await ensureParents(path)
    await writeMeta(path, node)
  }
}
