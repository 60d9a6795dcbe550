import { readFile } from 'node:fs/promises'
import { parse, TomlError } from 'smol-toml'
import { ConfigInvalidError, MissingValueError } from './errors.js'

/** The keys of `pipeline.config.toml` (Sentient's `cid` and `port`, plus ours). */
export interface PipelineConfig {
  cid?: number
  port?: number
  addr?: string
  dev?: boolean
  identity?: string
  authorized_keys?: string
  server_key?: string[]
  root?: string[]
  allow_exec?: boolean
  max_sessions?: number
  ciphers?: string
  connect_timeout_ms?: number
  log_level?: string
  attest?: boolean
  expect_pcrs?: string[]
  attestation_root?: string
}

/** The default config path, relative to the working folder (as Sentient's, but TOML). */
export const DEFAULT_CONFIG_PATH = './.config/pipeline.config.toml'

type Kind = 'integer' | 'string' | 'boolean' | 'strings'
const KEYS: Record<keyof PipelineConfig, Kind> = {
  cid: 'integer',
  port: 'integer',
  addr: 'string',
  dev: 'boolean',
  identity: 'string',
  authorized_keys: 'string',
  server_key: 'strings',
  root: 'strings',
  allow_exec: 'boolean',
  max_sessions: 'integer',
  ciphers: 'string',
  connect_timeout_ms: 'integer',
  log_level: 'string',
  attest: 'boolean',
  expect_pcrs: 'strings',
  attestation_root: 'string',
}
/** Sentient's `[buffers]` table is accepted for compatibility and ignored: our limits are per option. */
const IGNORED = new Set(['buffers'])

/** Validates parsed TOML against the known keys; unknown keys are errors (they are usually typos). */
export function parseConfig(text: string, path = 'config'): PipelineConfig {
  let raw: Record<string, unknown>
  try {
    raw = parse(text) as Record<string, unknown>
  } catch (error) {
    const where = error instanceof TomlError ? ` at line ${error.line}, column ${error.column}` : ''
    throw new ConfigInvalidError(
      `${path} is not valid TOML${where}: ${(error as Error).message.split('\n')[0]}`,
      {
        cause: error,
      },
    )
  }
  const config: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(raw)) {
    if (IGNORED.has(key)) continue
    const kind = (KEYS as Record<string, Kind | undefined>)[key]
    if (!kind) {
      throw new ConfigInvalidError(
        `${path}: unknown key "${key}"; known keys: ${Object.keys(KEYS).join(', ')}`,
      )
    }
    const bad = (expected: string) =>
      new ConfigInvalidError(`${path}: key "${key}" must be ${expected}, got ${JSON.stringify(value)}`)
    switch (kind) {
      case 'integer':
        if (typeof value === 'bigint') {
          if (value < 0n || value > 0xffffffffn) throw bad('an integer from 0 to 4294967295')
          config[key] = Number(value)
        } else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) config[key] = value
        else throw bad('a non-negative integer')
        break
      case 'string':
        if (typeof value !== 'string') throw bad('a string')
        config[key] = value
        break
      case 'boolean':
        if (typeof value !== 'boolean') throw bad('true or false')
        config[key] = value
        break
      case 'strings':
        if (typeof value === 'string') config[key] = [value]
        else if (Array.isArray(value) && value.every((item) => typeof item === 'string')) config[key] = value
        else throw bad('a string or an array of strings')
        break
    }
  }
  return config as PipelineConfig
}

/**
 * Reads the config file. A missing file is an empty config when the path is the default one, and
 * an error when the user named it explicitly.
 */
export async function loadConfig(path: string, { explicit }: { explicit: boolean }): Promise<PipelineConfig> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return {}
    throw new ConfigInvalidError(
      `cannot read the config file ${path} (${(error as NodeJS.ErrnoException).code ?? error})`,
      { cause: error },
    )
  }
  return parseConfig(text, path)
}

/** Command line first, then the config file; reports a missing value with its flag and config key. */
export function pick<T>(
  cli: T | undefined,
  config: T | undefined,
  names: { flag: string; key: keyof PipelineConfig; what: string },
): T {
  const value = cli ?? config
  if (value === undefined) {
    throw new MissingValueError(
      `missing ${names.what}: pass ${names.flag} on the command line or set "${names.key}" in the config file`,
    )
  }
  return value
}
