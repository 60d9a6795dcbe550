/** The pino-compatible subset this package logs through; pass pino or any look-alike. */
export interface Logger {
  child(bindings: Record<string, unknown>): Logger
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

const noop = (): void => {}

/** A logger that drops everything (the default when none is passed). */
export const silentLogger: Logger = {
  child: () => silentLogger,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
}
