import { InvalidOptionError } from './errors.js'

const NAME = /^[A-Za-z_][A-Za-z0-9_]*\*?$/

/** Checks allowlist patterns: `NAME` (exact) or `PREFIX*` (every variable starting with PREFIX). */
export function checkEnvPatterns(patterns: readonly string[]): string[] {
  return patterns.map((p) => {
    const t = p.trim()
    if (!NAME.test(t) || t === '*') {
      throw new InvalidOptionError(
        `env allowlist pattern ${JSON.stringify(p)} is not valid: use NAME or PREFIX* (letters, digits, _)`,
      )
    }
    return t
  })
}

/**
 * The variables of `source` that the allowlist names, sorted by name. `forwardAll` forwards every
 * variable (DIMO's Go behaviour; the host's secrets go to the enclave too).
 */
export function selectEnv(
  source: Readonly<Record<string, string | undefined>>,
  patterns: readonly string[],
  forwardAll = false,
): Record<string, string> {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')))
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1))
  const out: [string, string][] = []
  for (const [key, value] of Object.entries(source)) {
    if (value === undefined) continue
    if (forwardAll || exact.has(key) || prefixes.some((p) => key.startsWith(p))) out.push([key, value])
  }
  out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return Object.fromEntries(out)
}
