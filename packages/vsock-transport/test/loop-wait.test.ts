import { execFileSync } from 'node:child_process'
import { pbkdf2 } from 'node:crypto'
import { closeSync, constants as fsConstants, openSync, writeSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { constants as osConstants } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { makeTempDir } from '@enclave/test-helpers'
import { describe, expect, it } from 'vitest'
import { loadAddon, type WaitHandle } from '../src/native.js'

// The addon's wait for an in-progress connect (waitConnected) runs on the event loop, not on the
// thread pool. No vsock connect may be dialled from this machine, so the wait is exercised on FIFO
// fds: one kept full (never writable: the wait stays pending), one empty (writable at once; SO_ERROR
// on a non-socket then fails with ENOTSOCK, which shows the result path). Real connects: QEMU guest.
const { ECANCELED, ENOTSOCK } = osConstants.errno

function fifo(dir: string, name: string, fill: boolean): number {
  const path = join(dir, name)
  execFileSync('mkfifo', [path])
  const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK)
  if (fill) {
    const chunk = Buffer.alloc(65536)
    for (let i = 0; i < 1024; i++) {
      try {
        writeSync(fd, chunk)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return fd
        throw err
      }
    }
    throw new Error('the FIFO never filled up')
  }
  return fd
}

function wait(fd: number): { handle: WaitHandle; result: Promise<number> } {
  let settle!: (result: number) => void
  const result = new Promise<number>((resolve) => {
    settle = resolve
  })
  const handle = loadAddon().waitConnected(fd, settle)
  if (typeof handle === 'number') throw new Error(`waitConnected failed: ${handle}`)
  return { handle, result }
}

describe.runIf(process.platform === 'linux')('waitConnected (event-loop wait)', () => {
  it('pending waits hold no pool thread: fs and crypto still run while 8 are pending; cancel ends each', async () => {
    const temp = makeTempDir('vt-wait-')
    const fds: number[] = []
    try {
      const waits = Array.from({ length: 8 }, (_, i) => {
        const fd = fifo(temp.path, `full-${i}`, true)
        fds.push(fd)
        return wait(fd)
      })
      // libuv's pool has 4 threads by default: 8 waits holding threads would block these forever.
      await readFile(new URL(import.meta.url))
      await promisify(pbkdf2)('pw', 'salt', 1, 32, 'sha256')
      let settled = 0
      for (const w of waits) void w.result.then(() => settled++)
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(settled, 'a full FIFO is never writable, so no wait may end by itself').toBe(0)
      for (const w of waits) expect(loadAddon().cancelWait(w.handle)).toBe(0)
      expect(await Promise.all(waits.map((w) => w.result))).toEqual(Array(8).fill(-ECANCELED))
      // A cancel after the wait has called back is a no-op, not a crash.
      for (const w of waits) expect(loadAddon().cancelWait(w.handle)).toBe(0)
    } finally {
      for (const fd of fds) closeSync(fd)
      temp.remove()
    }
  })

  it('a writable fd calls back with the SO_ERROR result (ENOTSOCK for a FIFO)', async () => {
    const temp = makeTempDir('vt-wait-')
    const fd = fifo(temp.path, 'empty', false)
    try {
      const w = wait(fd)
      expect(await w.result).toBe(-ENOTSOCK)
    } finally {
      closeSync(fd)
      temp.remove()
    }
  })

  it('an fd that is not open is an error result, not a crash', () => {
    const fd = openSync(new URL(import.meta.url), 'r')
    closeSync(fd)
    const result = loadAddon().waitConnected(fd, () => {})
    expect(typeof result === 'number' && result < 0).toBe(true)
  })
})
