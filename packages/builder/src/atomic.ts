import { randomBytes } from 'node:crypto'
import { open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { Writable } from 'node:stream'

/**
 * Writes `dest` through a temporary file in the same folder, renamed into place only when `fill`
 * succeeds. The temporary name is random and opened with O_EXCL ('wx'): concurrent writers never
 * share it and a file or symlink planted under that name is refused, not followed. On any failure
 * the temporary file is removed (only when this call created it) and the error is rethrown.
 */
export async function writeAtomically(
  dest: string,
  mode: number,
  fill: (out: Writable) => Promise<void>,
): Promise<void> {
  const temp = join(dirname(dest), `.${basename(dest)}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`)
  const fh = await open(temp, 'wx', mode)
  const out = fh.createWriteStream()
  try {
    await fill(out)
    await rename(temp, dest)
  } catch (err) {
    out.destroy()
    await fh.close().catch(() => {})
    await unlink(temp).catch(() => {})
    throw err
  }
}
