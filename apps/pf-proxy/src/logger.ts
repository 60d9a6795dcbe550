import pino, { type Logger } from 'pino'

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

const RUST_LEVELS: Readonly<Record<string, LogLevel>> = Object.freeze({
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  error: 'error',
  off: 'silent',
})

/**
 * The level Sentient's pf-proxy would use for a RUST_LOG value: a bare level (`debug`) or the
 * directive for this crate (`pf_proxy=trace`, also `ip_to_vsock=...` style per-binary names)
 * wins; other crates' directives are ignored. Undefined when nothing applies.
 */
export function levelFromRustLog(value: string | undefined): LogLevel | undefined {
  if (!value) return undefined
  let bare: LogLevel | undefined
  let ours: LogLevel | undefined
  for (const directive of value.split(',')) {
    const [target, level] = directive.trim().toLowerCase().split('=') as [string, string | undefined]
    if (level === undefined) {
      bare = RUST_LEVELS[target] ?? bare
    } else if (/^(pf_proxy|pf-proxy|ip_to_vsock|vsock_to_ip|transparent_port_to_vsock)/.test(target)) {
      ours = RUST_LEVELS[level] ?? ours
    }
  }
  return ours ?? bare
}

/** JSON logs to stderr (stdout stays free for data); synchronous so nothing is lost at exit. */
export function createLogger(level: LogLevel, tool: string): Logger {
  return pino({ level, base: { pid: process.pid, tool } }, pino.destination({ fd: 2, sync: true }))
}
