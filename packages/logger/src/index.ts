/**
 * @enclave/logger: the logger contract every @enclave package logs through. It is the slice of a
 * pino logger they use, so pino, its children and look-alikes fit; no package ever creates a
 * logger of its own, and without one they stay silent.
 *
 * @example
 * ```ts
 * import { pino } from 'pino'
 * import { type Logger, silentLogger } from '@enclave/logger'
 *
 * const logger: Logger = process.env.DEBUG ? pino({ level: 'debug' }) : silentLogger
 * logger.child({ component: 'demo' }).info({ port: 8080 }, 'listening')
 * ```
 */

/** What the packages call: pino's `(object, message?)` form at five levels, and `child`. */
export interface Logger {
  child(bindings: Record<string, unknown>): Logger
  /** Optional: loggers without a trace level fit too. */
  trace?(object: object, message?: string): void
  debug(object: object, message?: string): void
  info(object: object, message?: string): void
  warn(object: object, message?: string): void
  error(object: object, message?: string): void
}

function noop(): void {}

/** The default when the caller passes no logger: drops everything; its children are itself. */
export const silentLogger: Logger = Object.freeze({
  child: () => silentLogger,
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
})
