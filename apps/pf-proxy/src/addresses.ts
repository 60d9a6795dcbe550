import { BlockList, isIP } from 'node:net'
import { parseAddress, type TransportAddress } from '@enclave/vsock-transport'
import { DestinationDeniedError, UsageError } from './errors.js'

/** `--ip-addr`: `host:port`, `[v6]:port`, or any transport URI (`tcp://`, `unix://`...). */
export function parseIpAddr(flag: string, text: string): TransportAddress {
  if (text.includes('://')) return parseUri(flag, text)
  const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(text)
  if (!match)
    throw new UsageError(`${flag} ${JSON.stringify(text)}: expected IP:PORT (e.g. 127.0.0.1:8080) or a URI`)
  return parseUri(flag, `tcp://${match[1]}:${match[2]}`)
}

/** `--vsock-addr`: `CID:PORT` (CID a number or any|local|host|parent), or any transport URI. */
export function parseVsockAddr(flag: string, text: string): TransportAddress {
  if (text.includes('://')) return parseUri(flag, text)
  if (!/^[^:]+:[^:]+$/.test(text)) {
    throw new UsageError(`${flag} ${JSON.stringify(text)}: expected CID:PORT (e.g. 16:5000) or a URI`)
  }
  return parseUri(flag, `vsock://${text}`)
}

/** `--vsock` of transparent-port-to-vsock: a CID (the port comes from each connection), or `hvsock:///path`. */
export type VsockTarget = { scheme: 'vsock'; cid: number } | { scheme: 'hvsock'; path: string }

export function parseVsockTarget(flag: string, text: string): VsockTarget {
  if (text.startsWith('hvsock://')) {
    const address = parseUri(flag, `${text}:1`)
    if (address.scheme !== 'hvsock')
      throw new UsageError(`${flag} ${JSON.stringify(text)}: expected hvsock:///path`)
    return { scheme: 'hvsock', path: address.path }
  }
  const address = parseUri(flag, `vsock://${text}:1`)
  if (address.scheme !== 'vsock') throw new UsageError(`${flag} ${JSON.stringify(text)}: expected a CID`)
  return { scheme: 'vsock', cid: address.cid }
}

export function targetFor(target: VsockTarget, port: number): TransportAddress {
  return target.scheme === 'vsock'
    ? { scheme: 'vsock', cid: target.cid, port }
    : { scheme: 'hvsock', path: target.path, port }
}

function parseUri(flag: string, text: string): TransportAddress {
  try {
    return parseAddress(text)
  } catch (cause) {
    throw new UsageError(`${flag}: ${(cause as Error).message}`)
  }
}

type Rule = { list: BlockList; port: number | undefined }
type Family = 'ipv4' | 'ipv6'

/**
 * Destinations --allow-any still refuses (they must be listed in --allow by name): loopback and
 * "this host" (0.0.0.0 and :: dial this machine), link-local, and the cloud metadata services
 * (169.254.169.254 is in 169.254.0.0/16; fd00:ec2::254 is EC2's IPv6 one).
 */
const SENSITIVE: readonly { list: BlockList; kind: string }[] = (
  [
    ['127.0.0.0', 8, 'ipv4', 'loopback'],
    ['0.0.0.0', 8, 'ipv4', 'this-host'],
    ['169.254.169.254', 32, 'ipv4', 'cloud metadata'],
    ['169.254.0.0', 16, 'ipv4', 'link-local'],
    ['::1', 128, 'ipv6', 'loopback'],
    ['::', 128, 'ipv6', 'this-host'],
    ['fe80::', 10, 'ipv6', 'link-local'],
    ['fd00:ec2::254', 128, 'ipv6', 'cloud metadata'],
  ] as const
).map(([network, prefix, family, kind]) => {
  const list = new BlockList()
  list.addSubnet(network, prefix, family)
  return { list, kind }
})

/**
 * The destination policy of vsock-to-ip-transparent. `--allow` entries: `CIDR`, `IP`, `IP:PORT`,
 * `CIDR:PORT` (IPv6 in brackets when a port follows: `[fd00::/8]:443`). With `allowAny`, any
 * other destination is admitted too, except loopback, link-local and metadata addresses, which
 * only an --allow entry admits.
 */
export class Allowlist {
  readonly #rules: Rule[] = []
  readonly #allowAny: boolean

  constructor(flag: string, entries: readonly string[], { allowAny = false }: { allowAny?: boolean } = {}) {
    for (const entry of entries) this.#rules.push(parseRule(flag, entry))
    this.#allowAny = allowAny
  }

  get size(): number {
    return this.#rules.length
  }

  get allowAny(): boolean {
    return this.#allowAny
  }

  /** Throws DestinationDeniedError unless the policy admits `host:port`. */
  check(host: string, port: number): void {
    // BlockList matches IPv4-mapped IPv6 (::ffff:127.0.0.1) against IPv4 subnets and back.
    const family: Family = isIP(host) === 6 ? 'ipv6' : 'ipv4'
    for (const rule of this.#rules) {
      if ((rule.port === undefined || rule.port === port) && rule.list.check(host, family)) return
    }
    const shown = family === 'ipv6' ? `[${host}]:${port}` : `${host}:${port}`
    if (!this.#allowAny) throw new DestinationDeniedError(shown)
    const sensitive = SENSITIVE.find(({ list }) => list.check(host, family))
    if (sensitive) throw new DestinationDeniedError(shown, sensitive.kind)
  }
}

function parseRule(flag: string, entry: string): Rule {
  const bad = (why: string): never => {
    throw new UsageError(
      `${flag} ${JSON.stringify(entry)}: ${why}; expected CIDR, IP, IP:PORT or CIDR:PORT (IPv6 with a port as [fd00::/8]:443)`,
    )
  }
  let network = entry
  let portText: string | undefined
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry)
  if (bracketed) {
    network = bracketed[1]!
    portText = bracketed[2]
  } else if (entry.split(':').length === 2) {
    ;[network, portText] = entry.split(':') as [string, string]
  }
  const [ip, prefixText] = network.split('/') as [string, string | undefined]
  const version = isIP(ip)
  if (version === 0)
    bad(`${JSON.stringify(ip)} is not an IP address (the header carries addresses, not names)`)
  const family = version === 6 ? 'ipv6' : 'ipv4'
  const max = version === 6 ? 128 : 32
  const prefix = prefixText === undefined ? max : Number(prefixText)
  if (!/^\d+$/.test(prefixText ?? String(max)) || prefix > max) bad(`prefix length must be 0..${max}`)
  let port: number | undefined
  if (portText !== undefined) {
    port = Number(portText)
    if (!/^\d+$/.test(portText) || port < 1 || port > 65_535) bad('port must be 1..65535')
  }
  const list = new BlockList()
  list.addSubnet(ip, prefix, family)
  return { list, port }
}
