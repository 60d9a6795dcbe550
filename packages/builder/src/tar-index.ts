import type { FileHandle } from 'node:fs/promises'

/**
 * Where each regular file of an uncompressed tar starts and how long it is, found by reading only
 * the headers with positional reads. tar-stream (used for every layer) is strictly sequential; the
 * outer docker-archive needs random access to open its layers in manifest order without copying.
 */
export interface TarMember {
  readonly offset: number
  readonly size: number
}

function cstring(buf: Buffer, start: number, end: number): string {
  const nul = buf.indexOf(0, start)
  return buf.toString('utf8', start, nul === -1 || nul > end ? end : nul)
}

function parseSize(buf: Buffer): number {
  if (buf[124]! & 0x80) {
    // GNU base-256 for sizes over 8 GiB.
    let n = 0
    for (let i = 125; i < 136; i++) n = n * 256 + buf[i]!
    return n
  }
  const text = cstring(buf, 124, 136).trim()
  if (!/^[0-7]*$/.test(text)) throw new Error(`bad size field "${text}"`)
  return text === '' ? 0 : Number.parseInt(text, 8)
}

function checksumOk(buf: Buffer): boolean {
  const stored = Number.parseInt(cstring(buf, 148, 156).trim(), 8)
  let sum = 0
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : buf[i]!
  return stored === sum
}

function paxPath(data: Buffer): string | undefined {
  let path: string | undefined
  let pos = 0
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos)
    if (space === -1) break
    const len = Number.parseInt(data.toString('ascii', pos, space), 10)
    if (!Number.isFinite(len) || len <= 0) break
    const record = data.toString('utf8', space + 1, pos + len - 1)
    const eq = record.indexOf('=')
    if (record.slice(0, eq) === 'path') path = record.slice(eq + 1)
    pos += len
  }
  return path
}

/** Indexes the regular files of the tar in `file` by normalised name (no leading `./`). */
export async function indexTar(file: FileHandle, fileSize: number): Promise<Map<string, TarMember>> {
  const members = new Map<string, TarMember>()
  const block = Buffer.alloc(512)
  let pos = 0
  let longName: string | undefined
  for (;;) {
    if (pos + 512 > fileSize)
      throw new Error(`truncated tar: header at ${pos} runs past the end (${fileSize})`)
    await file.read(block, 0, 512, pos)
    if (block.every((b) => b === 0)) break
    if (!checksumOk(block))
      throw new Error(`not a tar file, or corrupt: bad header checksum at offset ${pos}`)
    const size = parseSize(block)
    const type = String.fromCharCode(block[156]!)
    const dataStart = pos + 512
    if (dataStart + size > fileSize) throw new Error(`truncated tar: member at ${pos} runs past the end`)
    if (type === 'L' || type === 'x') {
      if (size > 1 << 20) throw new Error(`extended header at ${pos} is implausibly large (${size} bytes)`)
      const data = Buffer.alloc(size)
      await file.read(data, 0, size, dataStart)
      longName = type === 'L' ? cstring(data, 0, size) : (paxPath(data) ?? longName)
    } else {
      let name = cstring(block, 0, 100)
      if (block.toString('latin1', 257, 262) === 'ustar') {
        const prefix = cstring(block, 345, 500)
        if (prefix) name = `${prefix}/${name}`
      }
      if (longName !== undefined) name = longName
      longName = undefined
      if (type === '0' || type === '\0' || type === '7')
        members.set(name.replace(/^(\.\/)+/, '').replace(/^\/+/, ''), { offset: dataStart, size })
    }
    pos = dataStart + Math.ceil(size / 512) * 512
  }
  return members
}
