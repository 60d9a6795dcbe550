/**
 * The slice of a pino logger this package uses; pino, its children and compatible loggers fit
 * (so does @enclave/supervisor's, which has no `trace`).
 */
export interface Logger {
  child(bindings: Record<string, unknown>): Logger
  trace?(object: object, message?: string): void
  debug(object: object, message?: string): void
  info(object: object, message?: string): void
  warn(object: object, message?: string): void
  error(object: object, message?: string): void
}

/** What @enclave/tunnel expects: every level present. */
export interface FullLogger extends Logger {
  child(bindings: Record<string, unknown>): FullLogger
  trace(object: object, message?: string): void
}

function noop(): void {}

/** Used when the caller passes no logger: the package never creates a real one. */
export const silentLogger: FullLogger = Object.freeze({
  child: () => silentLogger,
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
})

/** Fills in `trace` (as a no-op) for loggers without it, children included. */
export function fullLogger(logger: Logger): FullLogger {
  if (typeof logger.trace === 'function') return logger as FullLogger
  return {
    child: (bindings) => fullLogger(logger.child(bindings)),
    trace: noop,
    debug: (o, m) => logger.debug(o, m),
    info: (o, m) => logger.info(o, m),
    warn: (o, m) => logger.warn(o, m),
    error: (o, m) => logger.error(o, m),
  }
}
