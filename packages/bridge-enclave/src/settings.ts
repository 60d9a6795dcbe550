import { randomUUID } from 'node:crypto'
import { DEFAULT_CLIENT_REQUEST_TIMEOUT_MS } from './constants.js'
import { InvalidSettingsError } from './errors.js'

/**
 * The settings an enclave sends in the handshake, in JavaScript units. On the wire they are
 * DIMO's Go `BridgeSettings` JSON: durations in integer nanoseconds, slices possibly `null`.
 */
export interface BridgeSettings {
  appName: string
  watchdog: {
    /** The enclave's id, canonical lowercase UUID text. */
    enclaveId: string
    /** Heartbeats are sent every interval/2; a side that hears none for a whole interval fails. */
    intervalMs: number
  }
  logger: {
    /** Log level the host should use for itself ("" leaves it unchanged). */
    level: string
  }
  /** Host TCP port → enclave vsock port. */
  servers: ServerTunnelSettings[]
  /** Enclave dials out: host listens on vsock `enclaveDialPort`. */
  clients: ClientTunnelSettings[]
}

/** Lowest CID an enclave can have (3 is the parent instance). */
export const MIN_ENCLAVE_CID = 4
/** VMADDR_CID_LOCAL: the vsock loopback of one machine (vsock_loopback), used by local tests. */
const LOCAL_CID = 1

export interface ServerTunnelSettings {
  /** The enclave's own CID (where the host dials). */
  enclaveCid: number
  /** vsock port the enclave listens on. */
  enclaveListenPort: number
  /** TCP port the host listens on. */
  bridgeTcpPort: number
}

export interface ClientTunnelSettings {
  /** vsock port the host listens on for this tunnel. */
  enclaveDialPort: number
  /** Bound on the host's dial, in ms; 0 means 5 minutes. */
  requestTimeoutMs: number
}

/** What `settingsFromJson` returns: the settings and one warning per ignored unknown field. */
export interface ParsedSettings {
  settings: BridgeSettings
  warnings: string[]
}

/** Most tunnels of each kind one handshake may ask for (each costs the host a listener). */
export const MAX_TUNNELS_PER_KIND = 64

const NS_PER_MS = 1_000_000
const UINT32_MAX = 0xffffffff
const UUID_CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const UUID_HEX = /^[0-9a-f]{32}$/i

/** Parses any UUID text form gofrs/uuid accepts that matters in practice; returns canonical lowercase. */
export function normalizeUuid(text: string): string | undefined {
  let t = text.trim()
  if (t.startsWith('urn:uuid:')) t = t.slice(9)
  if (t.startsWith('{') && t.endsWith('}')) t = t.slice(1, -1)
  if (UUID_CANONICAL.test(t)) return t.toLowerCase()
  if (UUID_HEX.test(t)) {
    const h = t.toLowerCase()
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
  }
  return undefined
}

/**
 * A random UUIDv4 whose 16 bytes contain no 0x0A. DIMO's Go host splits heartbeats at LF, so it
 * fails on the ~5 % of random ids that contain that byte; these ids work with Go hosts too.
 */
export function newEnclaveId(): string {
  for (;;) {
    const id = randomUUID()
    if (!uuidToBytes(id).includes(0x0a)) return id
  }
}

/** The 16 raw bytes of a UUID in canonical text form. */
export function uuidToBytes(uuid: string): Buffer {
  const canonical = normalizeUuid(uuid)
  if (canonical === undefined) throw new InvalidSettingsError('watchdog.enclaveId', `"${uuid}" is not a UUID`)
  return Buffer.from(canonical.replaceAll('-', ''), 'hex')
}

/** Canonical UUID text of 16 raw bytes. */
export function uuidFromBytes(bytes: Uint8Array): string {
  const h = Buffer.from(bytes).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

type Json = Record<string, unknown>

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function typeName(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return `a ${typeof value}`
}

class Reader {
  readonly warnings: string[] = []

  object(value: unknown, field: string): Json {
    if (!isObject(value)) throw new InvalidSettingsError(field, `expected an object, got ${typeName(value)}`)
    return value
  }

  /** Warns about every key of `obj` not in `known`. */
  known(obj: Json, prefix: string, known: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) this.warnings.push(`unknown field "${prefix}${key}" ignored`)
    }
  }

  string(value: unknown, field: string, fallback: string): string {
    if (value === undefined || value === null) return fallback
    if (typeof value !== 'string')
      throw new InvalidSettingsError(field, `expected a string, got ${typeName(value)}`)
    return value
  }

  integer(value: unknown, field: string, min: number, max: number, fallback?: number): number {
    if ((value === undefined || value === null) && fallback !== undefined) return fallback
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      throw new InvalidSettingsError(field, `expected an integer, got ${typeName(value)}`)
    }
    if (value < min || value > max) {
      throw new InvalidSettingsError(field, `${value} is out of range ${min}..${max}`)
    }
    return value
  }

  /** Go encodes a nil slice as null; both mean "none". */
  array(value: unknown, field: string): unknown[] {
    if (value === undefined || value === null) return []
    if (!Array.isArray(value))
      throw new InvalidSettingsError(field, `expected an array or null, got ${typeName(value)}`)
    if (value.length > MAX_TUNNELS_PER_KIND) {
      throw new InvalidSettingsError(
        field,
        `${value.length} entries; at most ${MAX_TUNNELS_PER_KIND} are allowed`,
      )
    }
    return value
  }
}

/**
 * Validates settings as decoded from the wire JSON (Go's field names, nanoseconds). Throws
 * InvalidSettingsError naming the first bad field; unknown fields become warnings.
 */
export function settingsFromJson(value: unknown): ParsedSettings {
  const r = new Reader()
  const root = r.object(value, '(root)')
  r.known(root, '', ['appName', 'watchdog', 'logger', 'servers', 'clients'])

  const appName = r.string(root.appName, 'appName', '')

  const wd = r.object(root.watchdog, 'watchdog')
  r.known(wd, 'watchdog.', ['enclaveId', 'interval'])
  if (typeof wd.enclaveId !== 'string') {
    throw new InvalidSettingsError(
      'watchdog.enclaveId',
      `required UUID string, got ${typeName(wd.enclaveId)}`,
    )
  }
  const enclaveId = normalizeUuid(wd.enclaveId)
  if (enclaveId === undefined)
    throw new InvalidSettingsError('watchdog.enclaveId', `"${wd.enclaveId}" is not a UUID`)
  if (enclaveId === '00000000-0000-0000-0000-000000000000') {
    throw new InvalidSettingsError(
      'watchdog.enclaveId',
      'the nil UUID is not allowed (Go: ErrEnclaveIDRequired)',
    )
  }
  // Whole milliseconds from 1 ms to 24 h; finer intervals are meaningless over vsock.
  const intervalNs = r.integer(wd.interval, 'watchdog.interval', NS_PER_MS, 86_400_000 * NS_PER_MS)
  const intervalMs = Math.round(intervalNs / NS_PER_MS)

  let level = ''
  if (root.logger !== undefined && root.logger !== null) {
    const lg = r.object(root.logger, 'logger')
    r.known(lg, 'logger.', ['level'])
    level = r.string(lg.level, 'logger.level', '')
  }

  const servers = r.array(root.servers, 'servers').map((entry, i): ServerTunnelSettings => {
    const f = `servers[${i}]`
    const s = r.object(entry, f)
    r.known(s, `${f}.`, ['enclaveCid', 'enclaveListenPort', 'bridgeTcpPort'])
    return {
      enclaveCid: enclaveCidOf(
        r.integer(s.enclaveCid, `${f}.enclaveCid`, 0, UINT32_MAX - 1),
        `${f}.enclaveCid`,
      ),
      enclaveListenPort: r.integer(s.enclaveListenPort, `${f}.enclaveListenPort`, 0, UINT32_MAX),
      bridgeTcpPort: r.integer(s.bridgeTcpPort, `${f}.bridgeTcpPort`, 1, 65535),
    }
  })
  const tcpPorts = new Set<number>()
  servers.forEach((s, i) => {
    if (tcpPorts.has(s.bridgeTcpPort)) {
      throw new InvalidSettingsError(`servers[${i}].bridgeTcpPort`, `port ${s.bridgeTcpPort} is used twice`)
    }
    tcpPorts.add(s.bridgeTcpPort)
  })

  const clients = r.array(root.clients, 'clients').map((entry, i): ClientTunnelSettings => {
    const f = `clients[${i}]`
    const c = r.object(entry, f)
    r.known(c, `${f}.`, ['enclaveDialPort', 'requestTimeout'])
    const timeoutNs = r.integer(c.requestTimeout, `${f}.requestTimeout`, 0, Number.MAX_SAFE_INTEGER, 0)
    return {
      enclaveDialPort: r.integer(c.enclaveDialPort, `${f}.enclaveDialPort`, 0, UINT32_MAX),
      requestTimeoutMs:
        timeoutNs === 0 ? DEFAULT_CLIENT_REQUEST_TIMEOUT_MS : Math.ceil(timeoutNs / NS_PER_MS),
    }
  })
  const dialPorts = new Set<number>()
  clients.forEach((c, i) => {
    if (dialPorts.has(c.enclaveDialPort)) {
      throw new InvalidSettingsError(
        `clients[${i}].enclaveDialPort`,
        `port ${c.enclaveDialPort} is used twice`,
      )
    }
    dialPorts.add(c.enclaveDialPort)
  })

  return {
    settings: { appName, watchdog: { enclaveId, intervalMs }, logger: { level }, servers, clients },
    warnings: r.warnings,
  }
}

/** The Go wire JSON of `settings` (nanosecond durations), validated first. */
export function settingsToJson(settings: BridgeSettings): Record<string, unknown> {
  const wire = {
    appName: settings.appName,
    watchdog: {
      enclaveId: settings.watchdog.enclaveId,
      interval: Math.round(settings.watchdog.intervalMs * NS_PER_MS),
    },
    logger: { level: settings.logger.level },
    servers: settings.servers.map((s) => ({
      enclaveCid: s.enclaveCid,
      enclaveListenPort: s.enclaveListenPort,
      bridgeTcpPort: s.bridgeTcpPort,
    })),
    clients: settings.clients.map((c) => ({
      enclaveDialPort: c.enclaveDialPort,
      requestTimeout: Math.round(c.requestTimeoutMs * NS_PER_MS),
    })),
  }
  settingsFromJson(wire)
  return wire
}

// 0 and 2 are the hypervisor and host CIDs, 3 the parent itself, 2^32-1 "any": none of them is an
// enclave, and a host that dialled them would reach its own services. CID 1 (vsock loopback) is
// allowed: the host only accepts a CID equal to the handshake's own peer CID, so only a process on
// the host's own loopback can name it (the QEMU guest tests run the bridge that way).
function enclaveCidOf(cid: number, field: string): number {
  if (cid === LOCAL_CID || cid >= MIN_ENCLAVE_CID) return cid
  throw new InvalidSettingsError(
    field,
    `${cid} is not an enclave CID (use 1 for vsock loopback or ${MIN_ENCLAVE_CID}..${UINT32_MAX - 1})`,
  )
}
