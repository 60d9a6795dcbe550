import { InvalidEnvError } from './errors.js'

/**
 * Typed parsing of the environment the host forwarded. The host is outside the enclave's trust
 * boundary, so every value is checked; all problems are reported at once, each naming its variable.
 *
 * @example
 * const config = parseEnv(bridge.env, {
 *   port: envVar.int('PORT', { default: 8080, min: 1, max: 65535 }),
 *   upstream: envVar.url('UPSTREAM_URL'),
 *   debug: envVar.bool('DEBUG', { default: false }),
 * })
 */
export interface EnvVar<T> {
  readonly variable: string
  parse(raw: string | undefined): T
}

class EnvProblem extends Error {}

function make<T>(variable: string, fallback: T | undefined, convert: (raw: string) => T): EnvVar<T> {
  return {
    variable,
    parse(raw) {
      if (raw !== undefined && raw !== '') return convert(raw)
      if (fallback !== undefined) return fallback
      throw new EnvProblem('is required but not set')
    },
  }
}

export const envVar = {
  string(variable: string, opts: { default?: string; pattern?: RegExp } = {}): EnvVar<string> {
    return make(variable, opts.default, (raw) => {
      if (opts.pattern && !opts.pattern.test(raw))
        throw new EnvProblem(`"${raw}" does not match ${opts.pattern}`)
      return raw
    })
  },
  int(variable: string, opts: { default?: number; min?: number; max?: number } = {}): EnvVar<number> {
    const min = opts.min ?? Number.MIN_SAFE_INTEGER
    const max = opts.max ?? Number.MAX_SAFE_INTEGER
    return make(variable, opts.default, (raw) => {
      if (!/^-?\d+$/.test(raw.trim())) throw new EnvProblem(`"${raw}" is not an integer`)
      const n = Number(raw.trim())
      if (!Number.isSafeInteger(n) || n < min || n > max)
        throw new EnvProblem(`${raw} is out of range ${min}..${max}`)
      return n
    })
  },
  bool(variable: string, opts: { default?: boolean } = {}): EnvVar<boolean> {
    return make(variable, opts.default, (raw) => {
      const v = raw.trim().toLowerCase()
      if (['1', 'true', 'yes', 'on'].includes(v)) return true
      if (['0', 'false', 'no', 'off'].includes(v)) return false
      throw new EnvProblem(`"${raw}" is not a boolean (use true/false, 1/0, yes/no, on/off)`)
    })
  },
  url(variable: string, opts: { default?: string; protocols?: readonly string[] } = {}): EnvVar<URL> {
    const fallback = opts.default === undefined ? undefined : new URL(opts.default)
    return make(variable, fallback, (raw) => {
      let url: URL
      try {
        url = new URL(raw)
      } catch {
        throw new EnvProblem(`"${raw}" is not a URL`)
      }
      if (opts.protocols && !opts.protocols.includes(url.protocol.replace(/:$/, ''))) {
        throw new EnvProblem(`protocol ${url.protocol} is not one of ${opts.protocols.join(', ')}`)
      }
      return url
    })
  },
  oneOf<const T extends string>(
    variable: string,
    values: readonly T[],
    opts: { default?: T } = {},
  ): EnvVar<T> {
    return make(variable, opts.default, (raw) => {
      if (!(values as readonly string[]).includes(raw))
        throw new EnvProblem(`"${raw}" is not one of ${values.join(', ')}`)
      return raw as T
    })
  },
  list(variable: string, opts: { default?: string[]; separator?: string } = {}): EnvVar<string[]> {
    return make(variable, opts.default, (raw) =>
      raw
        .split(opts.separator ?? ',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    )
  },
  /** Present-but-optional: undefined when unset. */
  optional<T>(inner: EnvVar<T>): EnvVar<T | undefined> {
    return {
      variable: inner.variable,
      parse: (raw) => (raw === undefined || raw === '' ? undefined : inner.parse(raw)),
    }
  },
} as const

export type EnvSpec = Record<string, EnvVar<unknown>>
export type EnvResult<S extends EnvSpec> = { [K in keyof S]: S[K] extends EnvVar<infer T> ? T : never }

/** Parses `env` against `spec`; throws InvalidEnvError listing every problem. */
export function parseEnv<S extends EnvSpec>(
  env: Readonly<Record<string, string | undefined>>,
  spec: S,
): EnvResult<S> {
  const out: Record<string, unknown> = {}
  const problems: { variable: string; message: string }[] = []
  for (const [key, v] of Object.entries(spec)) {
    try {
      out[key] = v.parse(Object.hasOwn(env, v.variable) ? env[v.variable] : undefined)
    } catch (err) {
      if (!(err instanceof EnvProblem)) throw err
      problems.push({ variable: v.variable, message: err.message })
    }
  }
  if (problems.length > 0) throw new InvalidEnvError(problems)
  return out as EnvResult<S>
}
