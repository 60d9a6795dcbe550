import { constants as osConstants } from 'node:os'
import { encodeJsonLine } from '@enclave/protocol'
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

export interface StatusDecoderOptions {
  /**
   * Called for a line that is not a valid status; the line is skipped and decoding goes on.
   * Without it, push() throws StatusInvalidError (strict).
   */
  readonly onInvalid?: (error: StatusInvalidError, line: string) => void
}

const FATAL_PREFIX = '{"status":"fatal"'
const FATAL_ERROR_PREFIX = '{"status":"fatal","error":"'
const NEWLINE = 0x0a

/**
 * Incremental decoder for the status stream: push chunks, get statuses. Bounded line length.
 * enclaver's (Rust) odyn does not JSON-escape fatal messages, so a line that starts like a fatal
 * status but is not JSON is still a fatal status, with the raw text as its error.
 */
export class StatusDecoder {
  readonly #onInvalid: StatusDecoderOptions['onInvalid']
  #pending: Buffer[] = []
  #pendingLength = 0
  #discarding = false

  constructor(options: StatusDecoderOptions = {}) {
    this.#onInvalid = options.onInvalid
  }

  push(chunk: Uint8Array): EnclaveStatus[] {
    const out: EnclaveStatus[] = []
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    for (;;) {
      const nl = buf.indexOf(NEWLINE)
      if (nl === -1) {
        this.#append(buf)
        return out
      }
      this.#append(buf.subarray(0, nl))
      buf = buf.subarray(nl + 1)
      const discarded = this.#discarding
      const line = Buffer.concat(this.#pending).toString('utf8')
      this.#pending = []
      this.#pendingLength = 0
      this.#discarding = false
      if (discarded) {
        this.#invalid(
          new StatusInvalidError(`the status stream is malformed: a line is over ${STATUS_MAX_LINE} bytes`),
          line,
        )
        continue
      }
      if (line.trim() === '') continue
      const status = this.#decodeLine(line)
      if (status) out.push(status)
    }
  }

  #append(bytes: Buffer): void {
    if (this.#discarding || bytes.length === 0) return
    if (this.#pendingLength + bytes.length > STATUS_MAX_LINE) {
      // Keep only a prefix for the report; the rest of the line is dropped (bounded memory).
      this.#discarding = true
      return
    }
    this.#pending.push(Buffer.from(bytes))
    this.#pendingLength += bytes.length
  }

  #decodeLine(line: string): EnclaveStatus | undefined {
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch (cause) {
      if (line.startsWith(FATAL_PREFIX)) return { status: 'fatal', error: rawFatalError(line) }
      this.#invalid(
        new StatusInvalidError(`the status stream is malformed: ${(cause as Error).message}`, { cause }),
        line,
      )
      return undefined
    }
    try {
      return parseStatus(value)
    } catch (err) {
      this.#invalid(err as StatusInvalidError, line)
      return undefined
    }
  }

  #invalid(error: StatusInvalidError, line: string): void {
    if (!this.#onInvalid) throw error
    this.#onInvalid(error, line.length > 200 ? `${line.slice(0, 200)}…` : line)
  }
}

/** The message of an unescaped fatal line: `{"status":"fatal","error":"<raw>"}` → `<raw>`. */
function rawFatalError(line: string): string {
  let text = line.startsWith(FATAL_ERROR_PREFIX) ? line.slice(FATAL_ERROR_PREFIX.length) : line
  if (text !== line && text.endsWith('"}')) text = text.slice(0, -2)
  return text.length > FATAL_MAX_CHARS ? `${text.slice(0, FATAL_MAX_CHARS)}…` : text
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
