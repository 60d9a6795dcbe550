import { createHash } from 'node:crypto'
import { createReadStream, readFileSync } from 'node:fs'

/** SHA-256 (hex) of a file of any size, read in 1 MiB chunks. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * The peak resident set size of a live process, in bytes (Linux: VmHWM in /proc/<pid>/status),
 * or undefined once it is gone.
 */
export function peakRssOf(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}
