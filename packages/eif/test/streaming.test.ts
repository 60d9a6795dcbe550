import { createHash } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { pcrExtend, readEif, writeEif } from '../src/index.js'

const MiB = 1024 * 1024
const RAMDISK = 256 * MiB
const CHUNK = 4 * 1024 * 1024 + 123 // odd size, so batching and direct writes both happen

let tmp: { path: string; remove: () => void }
beforeEach(() => {
  tmp = makeTempDir('eif-stream-')
})
afterEach(() => tmp.remove())

describe('streaming with bounded memory', () => {
  it('writes and reads a 256 MiB ramdisk without holding it in memory', { timeout: 120_000 }, async () => {
    const kernel = Buffer.from('kernel')
    const cmdline = 'console=ttyS0'
    const bootstrap = Buffer.from('bootstrap')
    const customerHash = createHash('sha384')
    const imageHash = createHash('sha384').update(kernel).update(cmdline).update(bootstrap)
    let peakRss = 0
    const sample = () => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss)
    }
    // One reused buffer: the writer must be done with a chunk before it asks for the next.
    const block = Buffer.alloc(CHUNK)
    async function* customer() {
      let produced = 0
      let n = 0
      while (produced < RAMDISK) {
        const len = Math.min(CHUNK, RAMDISK - produced)
        block.fill(n++ & 0xff)
        block.writeUInt32BE(n, 0)
        const chunk = block.subarray(0, len)
        customerHash.update(chunk)
        imageHash.update(chunk)
        produced += len
        sample()
        yield chunk
        // Small chunks too, as a cpio writer emits headers between file bodies.
        const small = Buffer.from(`entry-${n}`)
        customerHash.update(small)
        imageHash.update(small)
        yield small
      }
    }

    globalThis.gc?.()
    const baseline = process.memoryUsage().rss
    const path = join(tmp.path, 'big.eif')
    const written = await writeEif(path, { kernel, cmdline, ramdisks: [bootstrap, customer()] })
    sample()
    expect(statSync(path).size).toBe(written.size)
    expect(written.sections[4]!.size).toBeGreaterThan(RAMDISK)
    expect(written.pcrs.PCR0).toBe(pcrExtend(imageHash.digest()).toString('hex'))
    expect(written.pcrs.PCR2).toBe(pcrExtend(customerHash.digest()).toString('hex'))

    const timer = setInterval(sample, 5)
    try {
      const read = await readEif(path)
      expect(read.crc.ok).toBe(true)
      expect(read.pcrs).toEqual(written.pcrs)
    } finally {
      clearInterval(timer)
    }
    sample()
    // A buffered implementation would grow by at least the ramdisk (256 MiB); allow for GC slack.
    expect(peakRss - baseline).toBeLessThan(128 * MiB)
  })
})
