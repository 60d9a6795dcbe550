/**
 * The slice of a pino logger the project's packages use; pino, its children and compatible loggers
 * fit (`trace` is optional: @enclave/supervisor's logger has none).
 */
export interface Logger {
  child(bindings: Record<string, unknown>): Logger
  trace?(object: object, message?: string): void
  debug(object: object, message?: string): void
  info(object: object, message?: string): void
  warn(object: object, message?: string): void
  error(object: object, message?: string): void
}

function noop(): void {}

/** Used when the caller passes no logger: the package never creates a real one. */
export const silentLogger: Logger = Object.freeze({
  child: () => silentLogger,
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
})
