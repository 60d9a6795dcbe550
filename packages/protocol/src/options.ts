import { constants } from 'node:buffer'
import { InvalidOptionError } from './errors.js'

/** Options of LineDecoder and encodeLine. */
export interface LineOptions {
  /** Longest line accepted, in bytes, not counting the terminating 0x0A. @default 65536 (64 KiB) */
  maxLineLength?: number
}

/** Options of JsonLinesDecoder and encodeJsonLine. */
export interface JsonLinesOptions {
  /** Longest JSON line accepted, in bytes, not counting the terminating 0x0A. @default 1048576 (1 MiB) */
  maxLineLength?: number
}

/** Options of FrameDecoder, decodeFrame and encodeFrame. */
export interface FrameOptions {
  /** Largest payload accepted, in bytes (the 4-byte prefix not included); at most 2^32 - 1. @default 16777216 (16 MiB) */
  maxFrameLength?: number
}

/** Options of PipelineReader and encodePipelineString. */
export interface PipelineOptions {
  /** Largest string or readBytes() block accepted, in bytes (the 9-byte length not included). @default 1048576 (1 MiB) */
  maxStringLength?: number
}

const KiB = 1024
const MiB = 1024 * KiB

/** The defaults, one object per codec. Frozen: copy before changing. */
export const PROTOCOL_DEFAULTS = Object.freeze({
  line: Object.freeze({ maxLineLength: 64 * KiB }),
  jsonLines: Object.freeze({ maxLineLength: MiB }),
  frame: Object.freeze({ maxFrameLength: 16 * MiB }),
  pipeline: Object.freeze({ maxStringLength: MiB }),
})

// Text must still fit a JS string after decoding (UTF-8 never decodes to more UTF-16 units than bytes).
const MAX_TEXT_BYTES = Math.min(constants.MAX_STRING_LENGTH, constants.MAX_LENGTH - 1)
const MAX_U32 = 0xffffffff

function limit(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidOptionError(`${name} must be an integer from 1 to ${max} (bytes); got ${String(value)}`)
  }
  return value
}

export function resolveLineOptions(options: LineOptions = {}): Readonly<Required<LineOptions>> {
  return Object.freeze({
    maxLineLength: limit(
      'maxLineLength',
      options.maxLineLength,
      PROTOCOL_DEFAULTS.line.maxLineLength,
      constants.MAX_LENGTH - 1,
    ),
  })
}

export function resolveJsonLinesOptions(
  options: JsonLinesOptions = {},
): Readonly<Required<JsonLinesOptions>> {
  return Object.freeze({
    maxLineLength: limit(
      'maxLineLength',
      options.maxLineLength,
      PROTOCOL_DEFAULTS.jsonLines.maxLineLength,
      MAX_TEXT_BYTES,
    ),
  })
}

export function resolveFrameOptions(options: FrameOptions = {}): Readonly<Required<FrameOptions>> {
  return Object.freeze({
    maxFrameLength: limit(
      'maxFrameLength',
      options.maxFrameLength,
      PROTOCOL_DEFAULTS.frame.maxFrameLength,
      Math.min(MAX_U32, constants.MAX_LENGTH - 4),
    ),
  })
}

export function resolvePipelineOptions(options: PipelineOptions = {}): Readonly<Required<PipelineOptions>> {
  return Object.freeze({
    maxStringLength: limit(
      'maxStringLength',
      options.maxStringLength,
      PROTOCOL_DEFAULTS.pipeline.maxStringLength,
      MAX_TEXT_BYTES,
    ),
  })
}
