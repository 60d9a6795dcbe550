import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { silentLogger } from '@enclave/logger'
import { describe, expect, it } from 'vitest'
import { createReaper } from '../src/index.js'
import { procStat } from '../src/reaper.js'

/** Blocks the event loop (so libuv cannot handle SIGCHLD) until `pid` is a zombie. */
function waitZombieSync(pid: number, timeoutMs = 20_000): void {
  const deadline = Date.now() + timeoutMs
  while (procStat(pid)?.state !== 'Z') {
    if (Date.now() > deadline) throw new Error(`pid ${pid} did not end within ${timeoutMs} ms`)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
  }
}

describe('reaper', () => {
  it('never reaps a child spawned through child_process outside the supervisor (its exit status survives)', async () => {
    const reaper = createReaper({ ownPids: new Set(), subreaper: false }, silentLogger)
    try {
      const child = spawn('sh', ['-c', 'exit 7'], { stdio: 'ignore' })
      const exited = once(child, 'exit')
      // The child is a zombie and libuv has not run yet: a blanket reap would steal it now.
      waitZombieSync(child.pid!)
      expect(reaper.sweep()).toEqual([])
      expect(await exited).toEqual([7, null])
    } finally {
      reaper.stop()
    }
  })
})
