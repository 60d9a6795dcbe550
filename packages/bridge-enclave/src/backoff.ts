import { setTimeout as sleep } from 'node:timers/promises'
import { AbortedError } from './errors.js'

export interface BackoffOptions {
  /** First delay, in ms. */
  initialMs: number
  /** Largest delay, in ms. */
  maxMs: number
}

/**
 * Exponential backoff with jitter (multiplier 1.5, ±50 %, like Go's cenkalti/backoff defaults the
 * Go bridge uses), so a restarting host is not hammered by every enclave in lockstep.
 */
export function createBackoff({ initialMs, maxMs }: BackoffOptions): {
  wait(signal?: AbortSignal): Promise<void>
  reset(): void
} {
  let current = initialMs
  return {
    async wait(signal) {
      const delay = Math.min(maxMs, current * (0.5 + Math.random()))
      current = Math.min(maxMs, current * 1.5)
      try {
        await sleep(delay, undefined, { signal })
      } catch (err) {
        throw new AbortedError('the retry wait', { cause: err })
      }
    },
    reset() {
      current = initialMs
    },
  }
}
