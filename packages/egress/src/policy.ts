import { InvalidHostError, InvalidPolicyError } from './errors.js'
import { type Cidr, contains, formatIp, type Ip, parseCidr, parseIp, within } from './ip.js'

/** The manifest's `egress` allow and deny lists. */
export interface EgressPolicyConfig {
  readonly allow?: readonly string[]
  readonly deny?: readonly string[]
}

/** A destination host after normalisation: an IP literal or a lower-case name without trailing dot. */
export type Destination =
  | { readonly kind: 'ip'; readonly ip: Ip; readonly host: string }
  | { readonly kind: 'name'; readonly host: string }

/** The outcome of a policy check; `rule` says which entry (or built-in rule) refused. */
export type Verdict = { readonly allowed: true } | { readonly allowed: false; readonly rule: string }

/** A compiled host-name rule: its labels (lower case, `*` and `**` kept) and the rule as written. */
export interface Pattern {
  readonly labels: readonly string[]
  readonly text: string
}

/** A compiled, immutable egress policy. */
export interface EgressPolicy {
  readonly allowIps: readonly Cidr[]
  readonly denyIps: readonly Cidr[]
  readonly allowNames: readonly Pattern[]
  readonly denyNames: readonly Pattern[]
  /** True when some allow entry exists at all (enclaver: egress is enabled only then). */
  readonly enabled: boolean
}

/** The name `host` means the host's loopback (as in enclaver). */
export const HOST_NAME = 'host'
export const HOST_LOOPBACK: Ip = Object.freeze({ family: 4, value: 0x7f000001n })

/**
 * Ranges a name or a broad CIDR never reaches unless an allow entry inside the range names them:
 * the cloud metadata service, loopback and link-local (DNS rebinding and SSRF targets).
 */
const PROTECTED: readonly { net: Cidr; what: string }[] = [
  ['0.0.0.0/8', 'the "this network" range 0.0.0.0/8'],
  ['127.0.0.0/8', 'loopback 127.0.0.0/8'],
  ['169.254.0.0/16', 'link-local 169.254.0.0/16 (instance metadata 169.254.169.254)'],
  ['255.255.255.255/32', 'broadcast 255.255.255.255'],
  ['::/128', 'the unspecified address ::'],
  ['::1/128', 'loopback ::1'],
  ['fe80::/10', 'IPv6 link-local fe80::/10'],
  ['fd00:ec2::254/128', 'the IPv6 instance metadata address fd00:ec2::254'],
].map(([text, what]) => ({ net: parseCidr(text!)!, what: what! }))

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/

function parsePattern(entry: string): Pattern {
  let text = entry.trim().toLowerCase()
  if (text.endsWith('.')) text = text.slice(0, -1)
  if (text === '') throw new InvalidPolicyError(entry, 'it is empty')
  if (/[^\x21-\x7e]/.test(text))
    throw new InvalidPolicyError(entry, 'non-ASCII names must be written in punycode (xn--…)')
  if (text.includes('://') || /[/:@?#[\]]/.test(text)) {
    throw new InvalidPolicyError(
      entry,
      'it looks like a URL, an address with a port or a malformed IP; write only the host',
    )
  }
  const labels = text.split('.')
  labels.forEach((label, i) => {
    if (label === '**') {
      if (i !== 0) throw new InvalidPolicyError(entry, '** is only allowed as the leftmost label')
    } else if (label !== '*' && !LABEL.test(label)) {
      throw new InvalidPolicyError(entry, `label ${JSON.stringify(label)} is not a valid DNS label`)
    }
  })
  return { labels, text }
}

function matches(pattern: Pattern, name: readonly string[]): boolean {
  const p = pattern.labels
  let j = name.length - 1
  for (let i = p.length - 1; i >= 0; i--, j--) {
    // '**' is leftmost: it stands for one or more of the remaining labels.
    if (p[i] === '**') return j >= 0
    if (j < 0) return false
    if (p[i] !== '*' && p[i] !== name[j]) return false
  }
  return j < 0
}

/**
 * Compiles the manifest lists. Each entry is an IP or CIDR (v4 or v6; bare IPs are /32 or /128),
 * otherwise a domain pattern. Unlike enclaver, an entry that is neither (a URL, `host:port`, `a.**.b`)
 * is an error instead of a pattern that silently never matches.
 */
export function compilePolicy(config: EgressPolicyConfig = {}): EgressPolicy {
  const allowIps: Cidr[] = []
  const denyIps: Cidr[] = []
  const allowNames: Pattern[] = []
  const denyNames: Pattern[] = []
  for (const [list, ips, names, key] of [
    [config.allow, allowIps, allowNames, 'allow'],
    [config.deny, denyIps, denyNames, 'deny'],
  ] as const) {
    if (list === undefined) continue
    if (!Array.isArray(list))
      throw new InvalidPolicyError(String(list), `egress.${key} must be a list of strings`)
    for (const entry of list) {
      if (typeof entry !== 'string') throw new InvalidPolicyError(String(entry), 'entries must be strings')
      const cidr = parseCidr(entry.trim().toLowerCase())
      if (cidr) ips.push(cidr)
      else if (/^[\d.]+(\/\d+)?$/.test(entry.trim()) || entry.includes('/')) {
        throw new InvalidPolicyError(entry, 'it is not a valid IP address or CIDR')
      } else names.push(parsePattern(entry))
    }
  }
  return Object.freeze({
    allowIps,
    denyIps,
    allowNames,
    denyNames,
    enabled: allowIps.length + allowNames.length > 0,
  })
}

const FORBIDDEN_IN_HOST = /[\s/\\@?#:[\]]/

/**
 * Normalises a requested host the way a client library or a resolver would read it, so the
 * policy judges what will actually be dialled: brackets stripped, lower case, one trailing dot
 * removed, IPv4 in any notation (2130706433, 0177.0.0.1, 0x7f.1, 127.1) turned into a dotted
 * quad (the WHATWG URL host parser, which also applies IDNA), IPv4-mapped IPv6 turned into IPv4.
 * IPv6 zone ids and anything that is not a host name are refused.
 */
export function normalizeHost(raw: string): Destination {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 300) {
    throw new InvalidHostError(String(raw).slice(0, 300), 'empty or too long')
  }
  let text = raw
  const bracketed = text.startsWith('[') && text.endsWith(']')
  if (bracketed) text = text.slice(1, -1)
  if (text.includes('%') && text.includes(':')) {
    throw new InvalidHostError(raw, 'IPv6 zone ids name a local interface and cannot be used for egress')
  }
  if (text.includes(':') || bracketed) {
    const ip = parseIp(text.toLowerCase())
    if (!ip) throw new InvalidHostError(raw, 'not a valid IPv6 address')
    return { kind: 'ip', ip, host: formatIp(ip) }
  }
  if (FORBIDDEN_IN_HOST.test(text))
    throw new InvalidHostError(raw, 'contains characters not allowed in a host name')
  let hostname: string
  try {
    hostname = new URL(`http://${text}/`).hostname
  } catch {
    throw new InvalidHostError(raw, 'not a valid host name or IPv4 address')
  }
  if (hostname.endsWith('.')) hostname = hostname.slice(0, -1)
  const ip = parseIp(hostname)
  if (ip) return { kind: 'ip', ip, host: formatIp(ip) }
  if (hostname.length === 0 || hostname.length > 253 || !hostname.split('.').every((l) => LABEL.test(l))) {
    throw new InvalidHostError(raw, 'not a valid DNS name')
  }
  return { kind: 'name', host: hostname }
}

function protectedRange(policy: EgressPolicy, ip: Ip): string | undefined {
  for (const { net, what } of PROTECTED) {
    if (!contains(net, ip)) continue
    // Only an allow entry inside the protected range opts in: 0.0.0.0/0 does not reach metadata.
    const explicit = policy.allowIps.some((rule) => within(rule, net) && contains(rule, ip))
    if (!explicit) return `the built-in protection of ${what} (allow the address itself to permit it)`
  }
  return undefined
}

/** Checks a normalised destination against the policy: deny wins, then allow, else deny by default. */
export function checkDestination(policy: EgressPolicy, destination: Destination): Verdict {
  if (destination.kind === 'ip') {
    const denied = policy.denyIps.find((rule) => contains(rule, destination.ip))
    if (denied) return { allowed: false, rule: `deny rule "${denied.text}"` }
    if (!policy.allowIps.some((rule) => contains(rule, destination.ip))) {
      return { allowed: false, rule: 'default deny (no IP or CIDR allow entry contains this address)' }
    }
    const guarded = protectedRange(policy, destination.ip)
    return guarded ? { allowed: false, rule: guarded } : { allowed: true }
  }
  const labels = destination.host.split('.')
  const denied = policy.denyNames.find((p) => matches(p, labels))
  if (denied) return { allowed: false, rule: `deny rule "${denied.text}"` }
  const allowed = policy.allowNames.filter((p) => matches(p, labels))
  if (allowed.length === 0) return { allowed: false, rule: 'default deny (no allow entry matches this name)' }
  if (destination.host === HOST_NAME && !allowed.some((p) => p.text === HOST_NAME)) {
    return {
      allowed: false,
      rule: 'the built-in protection of the host loopback (allow "host" explicitly to permit it)',
    }
  }
  return { allowed: true }
}

/**
 * Checks one address a name resolved to (host side, before dialling): deny entries and the
 * protected ranges apply to it, so an allowed name cannot lead into a denied network.
 */
export function checkResolved(policy: EgressPolicy, name: string, ip: Ip): Verdict {
  const denied = policy.denyIps.find((rule) => contains(rule, ip))
  const via = `${name} resolves to ${formatIp(ip)}`
  if (denied) return { allowed: false, rule: `deny rule "${denied.text}" (${via})` }
  // `host` was explicitly allowed by name; its loopback is the point.
  if (name === HOST_NAME) return { allowed: true }
  const guarded = protectedRange(policy, ip)
  return guarded ? { allowed: false, rule: `${guarded} (${via})` } : { allowed: true }
}
