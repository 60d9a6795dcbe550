import { BlockList, isIP } from 'node:net'
import { InvalidOptionError } from './errors.js'

/**
 * The egress allowlist of client tunnels. Patterns: an exact host (`api.example.com`), `*.label`
 * (exactly one more label), `**.suffix` (any depth below suffix), an IP (`10.0.0.5`, `::1`) or a
 * CIDR (`10.0.0.0/8`), each optionally followed by `:port` (IPv6 in brackets: `[::1]:443`).
 * Names are matched as written, never resolved: allowing a name does not allow its addresses.
 */
export interface DestinationPolicy {
  /** Whether `host:port` may be dialed. */
  allows(host: string, port: number): boolean
  readonly patterns: readonly string[]
}

interface Rule {
  port: number | undefined
  match(host: string, family: number): boolean
}

function splitPort(pattern: string): { host: string; port: number | undefined } {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(pattern)
  if (bracket) return { host: bracket[1] as string, port: bracket[2] ? Number(bracket[2]) : undefined }
  const colon = pattern.lastIndexOf(':')
  // A bare IPv6 address (several colons) has no port.
  if (colon > 0 && pattern.indexOf(':') === colon) {
    return { host: pattern.slice(0, colon), port: Number(pattern.slice(colon + 1)) }
  }
  return { host: pattern, port: undefined }
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/

function checkName(name: string, pattern: string): void {
  if (name === '' || !name.split('.').every((l) => LABEL.test(l))) {
    throw new InvalidOptionError(
      `destination pattern ${JSON.stringify(pattern)}: "${name}" is not a host name`,
    )
  }
}

function ruleOf(raw: string): Rule {
  const pattern = raw.trim().toLowerCase()
  const { host, port } = splitPort(pattern)
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new InvalidOptionError(`destination pattern ${JSON.stringify(raw)}: port must be 1..65535`)
  }
  const slash = host.indexOf('/')
  if (slash > 0) {
    const ip = host.slice(0, slash)
    const bits = Number(host.slice(slash + 1))
    const family = isIP(ip)
    if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
      throw new InvalidOptionError(`destination pattern ${JSON.stringify(raw)} is not a valid CIDR`)
    }
    const list = new BlockList()
    list.addSubnet(ip, bits, family === 4 ? 'ipv4' : 'ipv6')
    return { port, match: (h, f) => f !== 0 && list.check(h, f === 4 ? 'ipv4' : 'ipv6') }
  }
  const family = isIP(host)
  if (family !== 0) {
    const list = new BlockList()
    list.addAddress(host, family === 4 ? 'ipv4' : 'ipv6')
    return { port, match: (h, f) => f !== 0 && list.check(h, f === 4 ? 'ipv4' : 'ipv6') }
  }
  if (host.startsWith('**.')) {
    const suffix = host.slice(3)
    checkName(suffix, raw)
    return { port, match: (h, f) => f === 0 && h.endsWith(`.${suffix}`) }
  }
  if (host.startsWith('*.')) {
    const suffix = host.slice(2)
    checkName(suffix, raw)
    return {
      port,
      match: (h, f) => f === 0 && h.endsWith(`.${suffix}`) && !h.slice(0, -suffix.length - 1).includes('.'),
    }
  }
  checkName(host, raw)
  return { port, match: (h, f) => f === 0 && h === host }
}

/** Compiles the patterns; throws InvalidOptionError naming a bad one. */
export function createDestinationPolicy(patterns: readonly string[]): DestinationPolicy {
  const rules = patterns.map(ruleOf)
  return {
    patterns: Object.freeze([...patterns]),
    allows(rawHost, port) {
      const host = rawHost.toLowerCase().replace(/\.$/, '')
      const family = isIP(host)
      return rules.some((r) => (r.port === undefined || r.port === port) && r.match(host, family))
    },
  }
}
