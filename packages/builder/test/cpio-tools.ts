import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { openEif } from '@enclave/eif'

/** Lists a newc archive with GNU cpio (`cpio -it`). */
export function gnuList(archive: Buffer): string[] {
  const out = execFileSync('cpio', ['-it', '--quiet'], { input: archive })
  return out.toString('utf8').split('\n').filter(Boolean)
}

/** Extracts with GNU cpio into `dir` (`cpio -idm`: make directories, keep mtimes; as root, owners too). */
export function gnuExtract(archive: Buffer, dir: string): void {
  const r = spawnSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], { input: archive, cwd: dir })
  if (r.status !== 0) throw new Error(`cpio -i failed (${r.status}): ${r.stderr.toString()}`)
}

export interface ParsedEntry {
  name: string
  ino: number
  mode: number
  uid: number
  gid: number
  nlink: number
  mtime: number
  size: number
  devmajor: number
  devminor: number
  rdevmajor: number
  rdevminor: number
  data: Buffer
}

/** A strict newc reader for assertions on header fields GNU cpio does not show. */
export function parseNewc(archive: Buffer): { entries: ParsedEntry[]; end: number } {
  const entries: ParsedEntry[] = []
  let pos = 0
  for (;;) {
    const magic = archive.toString('latin1', pos, pos + 6)
    if (magic !== '070701') throw new Error(`bad magic at ${pos}: ${magic}`)
    const f = (i: number) =>
      Number.parseInt(archive.toString('latin1', pos + 6 + i * 8, pos + 14 + i * 8), 16)
    const namesize = f(11)
    const name = archive.toString('utf8', pos + 110, pos + 110 + namesize - 1)
    const dataAt = (pos + 110 + namesize + 3) & ~3
    const size = f(6)
    if (name === 'TRAILER!!!') return { entries, end: dataAt }
    entries.push({
      name,
      ino: f(0),
      mode: f(1),
      uid: f(2),
      gid: f(3),
      nlink: f(4),
      mtime: f(5),
      size,
      devmajor: f(7),
      devminor: f(8),
      rdevmajor: f(9),
      rdevminor: f(10),
      data: archive.subarray(dataAt, dataAt + size),
    })
    pos = (dataAt + size + 3) & ~3
  }
}

/** The data of every section of an EIF, by type, in file order. */
export async function eifSections(path: string): Promise<{ type: string; data: Buffer }[]> {
  const image = await openEif(path)
  try {
    const file = readFileSync(path)
    return image.sections.map((s) => ({
      type: s.type,
      data: file.subarray(s.offset + 12, s.offset + 12 + s.size),
    }))
  } finally {
    await image.close()
  }
}
