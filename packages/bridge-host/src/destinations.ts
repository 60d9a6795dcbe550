import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'
import { InvalidOptionError } from './errors.js'

/**
 * The egress allowlist of client tunnels. Patterns: an exact host (`api.example.com`), `*.label`
 * (exactly one more label), `**.suffix` (any depth below suffix), an IP (`10.0.0.5`, `::1`) or a
 * CIDR (`10.0.0.0/8`), each optionally followed by `:port` (IPv6 in brackets: `[::1]:443`).
 * Names are matched as written; `checkDestination` then resolves an allowed name and refuses it if
 * any address is in a protected range (loopback, link-local, cloud metadata) that no IP/CIDR rule
 * names, so an allowed name cannot be pointed at the instance's own services.
 */
export interface DestinationPolicy {
  /** Whether `host:port` may be dialed (the name as written, before resolving). */
  allows(host: string, port: number): boolean
  /** Whether an IP/CIDR rule (not a name rule) covers `ip:port`. */
  namesAddress(ip: string, port: number): boolean
  readonly patterns: readonly string[]
}

interface Rule {
  port: number | undefined
  /** An IP or CIDR rule (as opposed to a name pattern). */
  ip: boolean
  match(host: string, family: number): boolean
}

/** Resolves a name to all its addresses (node:dns lookup with `all: true` by default). */
export type ResolveHost = (host: string) => Promise<readonly { address: string; family: number }[]>

export const systemResolve: ResolveHost = (host) => lookup(host, { all: true, verbatim: true })

// Addresses that reach the parent instance itself or its cloud metadata service.
const PROTECTED = new BlockList()
PROTECTED.addSubnet('127.0.0.0', 8, 'ipv4')
PROTECTED.addSubnet('0.0.0.0', 8, 'ipv4')
PROTECTED.addSubnet('169.254.0.0', 16, 'ipv4')
PROTECTED.addAddress('::1', 'ipv6')
PROTECTED.addAddress('::', 'ipv6')
PROTECTED.addSubnet('fe80::', 10, 'ipv6')
PROTECTED.addAddress('fd00:ec2::254', 'ipv6')

/** Loopback, unspecified, link-local (169.254/16, fe80::/10) or the EC2 metadata addresses. */
export function isProtectedAddress(ip: string): boolean {
  const family = isIP(ip)
  if (family === 0) return false
  // BlockList matches IPv4-mapped IPv6 (::ffff:169.254.169.254) against the IPv4 subnets too.
  return PROTECTED.check(ip, family === 4 ? 'ipv4' : 'ipv6')
}

export type DestinationCheck =
  | { ok: true; address: string; family: 4 | 6 }
  | { ok: false; code: 'EDENIED' | 'ENOTFOUND'; message: string }

/**
 * Resolves `host` once and checks every answer: refused if any is in a protected range that no
 * IP/CIDR rule names. Returns the checked address to dial, so the name is never resolved again
 * (a second lookup could answer differently).
 */
export async function checkDestination(
  policy: DestinationPolicy,
  host: string,
  port: number,
  resolve: ResolveHost = systemResolve,
): Promise<DestinationCheck> {
  const target = `${host}:${port}`
  if (!policy.allows(host, port)) {
    return { ok: false, code: 'EDENIED', message: `${target} is not in the host's destination allowlist` }
  }
  let answers: readonly { address: string; family: number }[]
  if (isIP(host) !== 0) answers = [{ address: host, family: isIP(host) }]
  else {
    try {
      answers = await resolve(host)
    } catch (err) {
      return { ok: false, code: 'ENOTFOUND', message: `cannot resolve ${host}: ${(err as Error).message}` }
    }
  }
  const first = answers[0]
  if (!first) return { ok: false, code: 'ENOTFOUND', message: `${host} has no addresses` }
  for (const { address } of answers) {
    if (isProtectedAddress(address) && !policy.namesAddress(address, port)) {
      return {
        ok: false,
        code: 'EDENIED',
        message: `${target} resolves to ${address}, a loopback/link-local/metadata address; allow it only by naming that IP or CIDR in the allowlist`,
      }
    }
  }
  return { ok: true, address: first.address, family: isIP(first.address) === 6 ? 6 : 4 }
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
    return { port, ip: true, match: (h, f) => f !== 0 && list.check(h, f === 4 ? 'ipv4' : 'ipv6') }
  }
  const family = isIP(host)
  if (family !== 0) {
    const list = new BlockList()
    list.addAddress(host, family === 4 ? 'ipv4' : 'ipv6')
    return { port, ip: true, match: (h, f) => f !== 0 && list.check(h, f === 4 ? 'ipv4' : 'ipv6') }
  }
  if (host.startsWith('**.')) {
    const suffix = host.slice(3)
    checkName(suffix, raw)
    return { port, ip: false, match: (h, f) => f === 0 && h.endsWith(`.${suffix}`) }
  }
  if (host.startsWith('*.')) {
    const suffix = host.slice(2)
    checkName(suffix, raw)
    return {
      port,
      ip: false,
      match: (h, f) => f === 0 && h.endsWith(`.${suffix}`) && !h.slice(0, -suffix.length - 1).includes('.'),
    }
  }
  checkName(host, raw)
  return { port, ip: false, match: (h, f) => f === 0 && h === host }
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
    namesAddress(ip, port) {
      const family = isIP(ip)
      return rules.some((r) => r.ip && (r.port === undefined || r.port === port) && r.match(ip, family))
    },
  }
}
