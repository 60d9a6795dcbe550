import { describe, it } from 'vitest'
import * as api from '../../src/index.js'
import { checks, type Target } from './checks.mjs'

export interface SuiteOptions extends Omit<Target, 'api'> {
  name: string
  /** Per-test setup and teardown (e.g. a temp dir, a fake multiplexer). */
  setup?: () => Promise<void> | void
  teardown?: () => Promise<void> | void
}

/**
 * The shared transport compliance suite: every scheme runs the same checks (echo, backpressure,
 * slow reader, half-close both ways, close, abort, timeout, peer address) over real sockets.
 */
export function transportSuite({ name, setup, teardown, ...target }: SuiteOptions): void {
  describe(`transport compliance: ${name}`, () => {
    for (const [checkName, check] of Object.entries(checks)) {
      it(checkName, async () => {
        await setup?.()
        try {
          await check({ api, ...target })
        } finally {
          await teardown?.()
        }
      })
    }
  })
}
