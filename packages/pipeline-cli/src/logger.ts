import type { Logger } from '@enclave/tunnel'

function noop(): void {}

/**
 * Used when the caller passes no logger. Defined here rather than imported from @enclave/tunnel,
 * whose runtime would otherwise load on every CLI start (~15 ms) for four no-op functions.
 */
export const silentLogger: Logger = Object.freeze({
  child: () => silentLogger,
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
})
