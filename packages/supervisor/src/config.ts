import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ConfigInvalidError, ConfigUnreadableError } from './errors.js'
import type { ProcessUser } from './process.js'

/**
 * odyn.yaml: what the supervisor needs beyond enclaver.yaml, kept in its own file next to it so
 * that enclaver.yaml stays exactly enclaver's (which rejects unknown keys). Every key is optional.
 *
 * ```yaml
 * user: { uid: 1000, gid: 1000 }      # the app's user; {uid: 0, gid: 0} runs it as root
 * heartbeat: true                     # Nitro boot heartbeat when PID 1 (default true)
 * control: { port: 9001, key_file: control.key }   # off unless present; key_file relative to the config dir
 * services:
 *   - name: cache
 *     command: [redis-server, --port, "6379"]
 *     restart: always                 # no | always | on-failure | on-success (default no)
 *     restart_sec: 1                  # delay before a restart, seconds (default 5)
 *     after: []                       # start after these
 *     requires: []                    # start after these, and they must exist
 *     before: []                      # start before these
 *     environment: { KEY: value }
 *     working_directory: /
 *     user: { uid: 1000, gid: 1000 }
 *     enabled: true
 * ```
 */
export interface OdynConfig {
  /** The control interface; absent = off. */
  readonly control?: { readonly port: number; readonly keyFile: string }
  readonly user?: ProcessUser
  readonly heartbeat: boolean
  readonly services: readonly ServiceConfig[]
}

export type RestartPolicy = 'no' | 'always' | 'on-failure' | 'on-success'

export interface ServiceConfig {
  readonly name: string
  readonly command: readonly string[]
  readonly restart: RestartPolicy
  /** Seconds to wait before a restart. */
  readonly restartSec: number
  readonly after: readonly string[]
  readonly requires: readonly string[]
  readonly before: readonly string[]
  readonly environment: Readonly<Record<string, string>>
  readonly workingDirectory?: string
  readonly user?: ProcessUser
  readonly enabled: boolean
}

export const ODYN_CONFIG_FILE = 'odyn.yaml'
export const DEFAULT_APP_USER: ProcessUser = Object.freeze({ uid: 1000, gid: 1000 })
const POLICIES: readonly RestartPolicy[] = ['no', 'always', 'on-failure', 'on-success']
const SERVICE_KEYS = [
  'name',
  'command',
  'restart',
  'restart_sec',
  'after',
  'requires',
  'before',
  'environment',
  'working_directory',
  'user',
  'enabled',
]
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** Validates a parsed odyn.yaml value, collecting every problem. */
export function parseOdynConfig(value: unknown, file = ODYN_CONFIG_FILE): OdynConfig {
  const issues: string[] = []
  if (value === null || value === undefined) return { heartbeat: true, services: [] }
  if (!isRecord(value)) throw new ConfigInvalidError(file, ['the file must be a mapping'])
  for (const key of Object.keys(value)) {
    if (!['user', 'heartbeat', 'services', 'control'].includes(key))
      issues.push(`${key}: unknown key (expected one of: user, heartbeat, services, control)`)
  }
  const user = value.user === undefined ? undefined : parseUser(value.user, 'user', issues)
  let heartbeat = true
  if (value.heartbeat !== undefined) {
    if (typeof value.heartbeat === 'boolean') heartbeat = value.heartbeat
    else issues.push('heartbeat: expected true or false')
  }
  let control: OdynConfig['control']
  if (value.control !== undefined) {
    const c = value.control
    const port = isRecord(c) ? (c.port ?? 9001) : undefined
    if (
      !isRecord(c) ||
      typeof port !== 'number' ||
      !Number.isInteger(port) ||
      port < 1 ||
      port > 0xfffffffe ||
      typeof c.key_file !== 'string' ||
      c.key_file.length === 0 ||
      Object.keys(c).some((k) => k !== 'port' && k !== 'key_file')
    ) {
      issues.push('control: expected { port: <vsock port, default 9001>, key_file: <path> }')
    } else control = { port, keyFile: c.key_file as string }
  }
  const services: ServiceConfig[] = []
  if (value.services !== undefined) {
    if (!Array.isArray(value.services)) issues.push('services: expected a list')
    else
      value.services.forEach((s, i) => {
        const parsed = parseService(s, `services[${i}]`, issues)
        if (parsed) services.push(parsed)
      })
  }
  const seen = new Set<string>()
  for (const s of services) {
    if (seen.has(s.name)) issues.push(`services: the name "${s.name}" is used twice`)
    seen.add(s.name)
  }
  if (issues.length > 0) throw new ConfigInvalidError(file, issues)
  return { ...(user ? { user } : {}), ...(control ? { control } : {}), heartbeat, services }
}

/** Reads `<configDir>/odyn.yaml`; a missing file means the defaults. */
export async function loadOdynConfig(configDir: string): Promise<OdynConfig> {
  const file = join(configDir, ODYN_CONFIG_FILE)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { heartbeat: true, services: [] }
    throw new ConfigUnreadableError(file, { cause: err })
  }
  let value: unknown
  try {
    value = parseYaml(text, { uniqueKeys: true })
  } catch (cause) {
    throw new ConfigUnreadableError(file, { cause })
  }
  return parseOdynConfig(value, file)
}

function parseService(value: unknown, path: string, issues: string[]): ServiceConfig | undefined {
  if (!isRecord(value)) {
    issues.push(`${path}: expected a mapping`)
    return undefined
  }
  for (const key of Object.keys(value)) {
    if (!SERVICE_KEYS.includes(key))
      issues.push(`${path}.${key}: unknown key (expected one of: ${SERVICE_KEYS.join(', ')})`)
  }
  const before = issues.length
  const name = value.name
  if (typeof name !== 'string' || !NAME.test(name))
    issues.push(`${path}.name: expected a name of letters, digits, ".", "_" or "-" (1-64 characters)`)
  const command = stringList(value.command, `${path}.command`, issues, true)
  const restart = value.restart ?? 'no'
  if (!POLICIES.includes(restart as RestartPolicy))
    issues.push(`${path}.restart: expected one of ${POLICIES.join(', ')}`)
  const restartSec = value.restart_sec ?? 5
  if (typeof restartSec !== 'number' || !Number.isFinite(restartSec) || restartSec < 0 || restartSec > 86400)
    issues.push(`${path}.restart_sec: expected a number of seconds in 0..86400`)
  const environment: Record<string, string> = {}
  if (value.environment !== undefined) {
    if (!isRecord(value.environment)) issues.push(`${path}.environment: expected a mapping of strings`)
    else
      for (const [k, v] of Object.entries(value.environment)) {
        if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
          issues.push(`${path}.environment.${k}: expected a string`)
        else Object.defineProperty(environment, k, { value: String(v), enumerable: true })
      }
  }
  const cwd = value.working_directory
  if (cwd !== undefined && (typeof cwd !== 'string' || !cwd.startsWith('/')))
    issues.push(`${path}.working_directory: expected an absolute path`)
  const user = value.user === undefined ? undefined : parseUser(value.user, `${path}.user`, issues)
  const enabled = value.enabled ?? true
  if (typeof enabled !== 'boolean') issues.push(`${path}.enabled: expected true or false`)
  const lists = {
    after: stringList(value.after ?? [], `${path}.after`, issues),
    requires: stringList(value.requires ?? [], `${path}.requires`, issues),
    before: stringList(value.before ?? [], `${path}.before`, issues),
  }
  if (issues.length > before) return undefined
  return {
    name: name as string,
    command: command!,
    restart: restart as RestartPolicy,
    restartSec: restartSec as number,
    ...(lists as { after: string[]; requires: string[]; before: string[] }),
    environment,
    ...(typeof cwd === 'string' ? { workingDirectory: cwd } : {}),
    ...(user ? { user } : {}),
    enabled: enabled as boolean,
  }
}

function parseUser(value: unknown, path: string, issues: string[]): ProcessUser | undefined {
  const ok = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0x7fffffff
  if (!isRecord(value) || !ok(value.uid) || !ok(value.gid) || Object.keys(value).length !== 2) {
    issues.push(`${path}: expected { uid: <integer>, gid: <integer> }`)
    return undefined
  }
  return { uid: value.uid as number, gid: value.gid as number }
}

function stringList(value: unknown, path: string, issues: string[], nonEmpty = false): string[] | undefined {
  if (
    !Array.isArray(value) ||
    !value.every((v) => typeof v === 'string') ||
    (nonEmpty && value.length === 0)
  ) {
    issues.push(`${path}: expected a ${nonEmpty ? 'non-empty ' : ''}list of strings`)
    return undefined
  }
  return value as string[]
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
