/** The subset of a pino logger this package uses; pass `pino()` or any compatible logger. */
export interface Logger {
  debug(object: object, message?: string): void
  info(object: object, message?: string): void
  warn(object: object, message?: string): void
  error(object: object, message?: string): void
  child(bindings: Record<string, unknown>): Logger
}

const noop = () => undefined

/** A logger that drops everything (the default when none is given). */
export const silentLogger: Logger = Object.freeze({
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
})
