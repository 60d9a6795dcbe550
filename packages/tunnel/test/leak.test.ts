import { countOpenFds, waitFor } from '@enclave/test-helpers'
import { afterAll, expect, it } from 'vitest'
import { forward } from '../src/index.js'
import { echoServer, roundTrip } from './sockets.js'

const cleanups: (() => unknown)[] = []
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

it('carries 10 000 sequential connections without leaking a file descriptor', async () => {
  const target = await echoServer()
  cleanups.push(target.close)
  const tunnel = await forward({ from: 'tcp://127.0.0.1:0', to: target.url })
  cleanups.push(() => tunnel.close({ drainTimeoutMs: 0 }))
  // Warm up (lazy handles, timers), then measure.
  await roundTrip(tunnel.address, 'warm-up')
  await waitFor(() => tunnel.stats().active === 0, { what: 'the warm-up connection to close' })
  const before = countOpenFds()
  // Bounded by count; how fast it runs is a benchmark's business, not this test's (generous limit below).
  const count = 10_000
  for (let i = 0; i < count; i++) {
    const reply = await roundTrip(tunnel.address, 'x')
    if (reply.length !== 1) throw new Error(`connection ${i} got ${reply.length} bytes back`)
  }
  await waitFor(() => tunnel.stats().active === 0 && target.sockets.size === 0, {
    timeoutMs: 30_000,
    what: 'every connection to close',
  })
  expect(countOpenFds()).toBeLessThanOrEqual(before)
  expect(tunnel.stats()).toMatchObject({ total: count + 1, errors: 0, active: 0, bytesIn: count + 7 })
}, 180_000)
