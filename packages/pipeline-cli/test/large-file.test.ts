import { createCipheriv, createHash } from 'node:crypto'
import { createWriteStream, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { sha256OfFile } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Fixture, startFixture } from './setup.js'

const MIB = 1 << 20
const GIB_IN_MIB = 1024

/**
 * Writes `mib` MiB quickly and reproducibly: one seeded pseudo-random MiB (AES-CTR of zeros), each
 * copy stamped with its index so no two MiB are alike. Returns the SHA-256 of what was written.
 */
async function writeSeededFile(path: string, mib: number, seed: string): Promise<string> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  const block = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(MIB))
  const hash = createHash('sha256')
  const out = createWriteStream(path)
  for (let i = 0; i < mib; i++) {
    const chunk = Buffer.from(block)
    chunk.writeBigUInt64BE(BigInt(i), 0)
    hash.update(chunk)
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()))
  }
  await new Promise<void>((resolve, reject) => {
    out.once('error', reject)
    out.end(() => resolve())
  })
  return hash.digest('hex')
}

describe('a 1 GiB file over unix://', () => {
  let fx: Fixture
  beforeAll(async () => {
    fx = await startFixture('unix')
  })
  afterAll(() => fx.close())

  it('goes there and back with the same SHA-256 on both sides, and leaves no temp files', async () => {
    const local = join(fx.dir, 'gib.bin')
    const back = join(fx.dir, 'gib-back.bin')
    const remote = join(fx.root, 'big/gib.bin')
    try {
      const expected = await writeSeededFile(local, GIB_IN_MIB, 'pipeline 1 GiB test')
      const sent = await fx.client().sendFile(local, 'big/gib.bin')
      expect(sent).toEqual({ size: GIB_IN_MIB * MIB, sha256: expected })
      expect(statSync(remote).size).toBe(GIB_IN_MIB * MIB)
      expect(await sha256OfFile(remote)).toBe(expected)

      const received = await fx.client().recvFile('big/gib.bin', back)
      expect(received).toEqual({ size: GIB_IN_MIB * MIB, sha256: expected })
      expect(await sha256OfFile(back)).toBe(expected)
      const leftovers = readdirSync(fx.dir, { recursive: true }).filter((name) =>
        String(name).endsWith('.tmp'),
      )
      expect(leftovers).toEqual([])
    } finally {
      // 3 GiB on a shared disk: remove it now rather than at the end of the file.
      for (const path of [local, back, remote]) rmSync(path, { force: true })
    }
  }, 180_000)
})
