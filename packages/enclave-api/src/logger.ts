/** The pino-compatible subset this package logs through; pass your app's logger (never created here). */
export interface Logger {
  child(bindings: Record<string, unknown>): Logger
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

const noop = () => {}
export const silentLogger: Logger = {
  child: () => silentLogger,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
}
