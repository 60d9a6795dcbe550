import { createRequire } from 'node:module'
import type { Logger } from '@enclave/pipeline-cli'
import type pinoModule from 'pino'

const require = createRequire(import.meta.url)

/** pino's level numbers; a level outside this table makes pino itself load (and judge it) at once. */
const LEVELS: Readonly<Record<string, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Number.POSITIVE_INFINITY,
}
const METHODS = ['trace', 'debug', 'info', 'warn', 'error'] as const

/**
 * A pino logger on stderr that loads pino (~30 ms of module loading) only when a line is due at
 * the chosen level. `run` and the transfers log at `warn` and usually print nothing, so their
 * start-up skips pino entirely; the first enabled line loads it synchronously and behaves exactly
 * as pino would (children keep their bindings).
 */
export function createLogger(level: string): Logger {
  let root: Logger | undefined
  const real = (): Logger => {
    if (!root) {
      const pino = require('pino') as typeof pinoModule
      root = pino({ level, base: undefined }, pino.destination({ fd: 2, sync: true })) as unknown as Logger
    }
    return root
  }
  const threshold = LEVELS[level]
  // An unknown (custom or misspelt) level: let pino accept or refuse it now, as before.
  if (threshold === undefined) return real()
  const lazy = (resolve: () => Logger): Logger => {
    let target: Logger | undefined
    const get = () => {
      target ??= resolve()
      return target
    }
    const logger = {
      child: (bindings: Record<string, unknown>) => lazy(() => get().child(bindings)),
    } as Logger
    for (const method of METHODS) {
      logger[method] =
        LEVELS[method]! >= threshold
          ? (object: object, message?: string) => get()[method]?.(object, message)
          : () => undefined
    }
    return logger
  }
  return lazy(real)
}
