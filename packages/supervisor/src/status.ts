import { constants as osConstants } from 'node:os'
import { encodeJsonLine, JsonLinesDecoder } from '@enclave/protocol'
import { StatusInvalidError } from './errors.js'

/**
 * The status channel (vsock 17000), wire-compatible with enclaver's odyn: one JSON object per
 * line, sent on connect and on every change. `signal` is a name such as "SIGTERM", as odyn sends
 * it; the parser also accepts a number (what enclaver's host expected), so both ends agree.
 */
export type EnclaveStatus =
  | { readonly status: 'running' }
  | { readonly status: 'exited'; readonly code: number }
  | { readonly status: 'signaled'; readonly signal: string }
  | { readonly status: 'fatal'; readonly error: string }

/** vsock ports, as enclaver's constants.rs. */
export const STATUS_PORT = 17000
export const APP_LOG_PORT = 17001

/** enclaver-run's exit codes besides the app's own. */
export const EXIT_SIGNALED = 107
export const EXIT_FATAL = 108
export const EXIT_INTERRUPTED = 109

/** A status line may not exceed this (a fatal message is cut to fit). */
export const STATUS_MAX_LINE = 16 * 1024
const FATAL_MAX_CHARS = 4096

const SIGNAL_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(osConstants.signals).map(([name, value]) => [value, name])),
)

/** Encodes one status as a JSON line (control characters and quotes escaped by JSON). */
export function encodeStatus(status: EnclaveStatus): Buffer {
  const checked = parseStatus(status)
  if (checked.status === 'fatal' && checked.error.length > FATAL_MAX_CHARS) {
    return encodeJsonLine({ status: 'fatal', error: `${checked.error.slice(0, FATAL_MAX_CHARS)}…` })
  }
  return encodeJsonLine(checked, { maxLineLength: STATUS_MAX_LINE })
}

/** Validates a decoded JSON value as a status; a numeric signal becomes its name. */
export function parseStatus(value: unknown): EnclaveStatus {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StatusInvalidError(`a status must be a JSON object, got ${describe(value)}`)
  }
  const v = value as Record<string, unknown>
  switch (v.status) {
    case 'running':
      return { status: 'running' }
    case 'exited':
      if (typeof v.code !== 'number' || !Number.isInteger(v.code)) {
        throw new StatusInvalidError(`an "exited" status needs an integer "code", got ${describe(v.code)}`)
      }
      return { status: 'exited', code: v.code }
    case 'signaled': {
      if (typeof v.signal === 'string' && v.signal.length > 0 && v.signal.length <= 64) {
        return { status: 'signaled', signal: v.signal }
      }
      if (typeof v.signal === 'number' && Number.isInteger(v.signal) && v.signal > 0) {
        return { status: 'signaled', signal: SIGNAL_NAMES[v.signal] ?? `signal ${v.signal}` }
      }
      throw new StatusInvalidError(
        `a "signaled" status needs "signal" as a name or a number, got ${describe(v.signal)}`,
      )
    }
    case 'fatal':
      if (typeof v.error !== 'string') {
        throw new StatusInvalidError(`a "fatal" status needs a string "error", got ${describe(v.error)}`)
      }
      return { status: 'fatal', error: v.error }
    default:
      throw new StatusInvalidError(
        `unknown status ${describe(v.status)} (expected running, exited, signaled or fatal)`,
      )
  }
}

/** Incremental decoder for the status stream: push chunks, get statuses. Bounded line length. */
export class StatusDecoder {
  readonly #lines = new JsonLinesDecoder({ maxLineLength: STATUS_MAX_LINE })

  push(chunk: Uint8Array): EnclaveStatus[] {
    let values: unknown[]
    try {
      values = this.#lines.push(chunk)
    } catch (cause) {
      throw new StatusInvalidError(`the status stream is malformed: ${(cause as Error).message}`, { cause })
    }
    return values.map(parseStatus)
  }
}

/** True once the app is over (exited, signaled or fatal). */
export function isFinal(status: EnclaveStatus): boolean {
  return status.status !== 'running'
}

/** The host's exit code for a final status: the app's code (as u8), 107 signaled, 108 fatal. */
export function exitCodeForStatus(status: EnclaveStatus): number | undefined {
  switch (status.status) {
    case 'exited':
      return status.code & 0xff
    case 'signaled':
      return EXIT_SIGNALED
    case 'fatal':
      return EXIT_FATAL
    default:
      return undefined
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 60)}…` : text
}
