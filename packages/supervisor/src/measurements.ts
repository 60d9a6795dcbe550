import { readFileSync } from 'node:fs'
import { InvalidOptionsError, PcrMismatchError } from './errors.js'

const PCR_NAME = /^PCR(\d{1,2})$/
const HEX = /^[0-9a-fA-F]{96}$/

/**
 * Parses `--expect-pcrs`: `PCR0=<hex>,PCR2=<hex>` inline, or a JSON file holding either
 * `{"PCR0": "...", ...}` or `enclaver build` / `nitro-cli describe-eif` output with `Measurements`.
 */
export function parseExpectedPcrs(spec: string): Record<string, string> {
  let entries: [string, unknown][]
  if (/^PCR\d/i.test(spec.trim())) {
    entries = spec.split(',').map((part) => {
      const [name, value] = part.split('=')
      return [(name ?? '').trim().toUpperCase(), (value ?? '').trim()]
    })
  } else {
    let json: unknown
    try {
      json = JSON.parse(readFileSync(spec, 'utf8'))
    } catch (err) {
      throw new InvalidOptionsError(
        `--expect-pcrs: ${spec} is neither PCRn=<hex>,... nor a readable JSON file (${(err as Error).message})`,
      )
    }
    const object = (json as { Measurements?: unknown })?.Measurements ?? json
    if (typeof object !== 'object' || object === null)
      throw new InvalidOptionsError(`--expect-pcrs: ${spec} holds no PCR map`)
    entries = Object.entries(object).filter(([k]) => PCR_NAME.test(k))
  }
  const out: Record<string, string> = {}
  for (const [name, value] of entries) {
    if (!PCR_NAME.test(name) || typeof value !== 'string' || !HEX.test(value)) {
      throw new InvalidOptionsError(`--expect-pcrs: ${name || '(empty)'} must be PCRn=<96 hex digits>`)
    }
    out[name] = value.toLowerCase()
  }
  if (Object.keys(out).length === 0) throw new InvalidOptionsError('--expect-pcrs names no PCR')
  return out
}

/** Throws PcrMismatchError unless every expected PCR equals the actual one. */
export function checkMeasurements(
  actual: Readonly<Record<string, string | undefined>>,
  expected: Readonly<Record<string, string>>,
): void {
  const mismatches = Object.entries(expected)
    .filter(([pcr, value]) => actual[pcr]?.toLowerCase() !== value.toLowerCase())
    .map(([pcr, value]) => ({ pcr, expected: value, actual: actual[pcr] }))
  if (mismatches.length > 0) throw new PcrMismatchError(mismatches)
}
