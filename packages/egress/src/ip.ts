// IP addresses as (family, bigint) so CIDR containment is one shift and compare, for v4 and v6.
import { isIPv6 } from 'node:net'

export interface Ip {
  readonly family: 4 | 6
  readonly value: bigint
}

export interface Cidr extends Ip {
  readonly prefix: number
  /** The entry as written in the manifest (for messages). */
  readonly text: string
}

const V4 =
  /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/

function parseV4(text: string): bigint | undefined {
  const m = V4.exec(text)
  if (!m) return undefined
  return (BigInt(m[1]!) << 24n) | (BigInt(m[2]!) << 16n) | (BigInt(m[3]!) << 8n) | BigInt(m[4]!)
}

function parseV6(input: string): bigint | undefined {
  if (!isIPv6(input) || input.includes('%')) return undefined
  let text = input
  const lastColon = text.lastIndexOf(':')
  const last = text.slice(lastColon + 1)
  if (last.includes('.')) {
    // A trailing dotted quad is the low 32 bits: rewrite it as two hex groups.
    const v4 = parseV4(last)
    if (v4 === undefined) return undefined
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`
  }
  const halves = text.split('::')
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16))
  let groups: number[]
  if (halves.length === 2) {
    const head = parse(halves[0]!)
    const tail = parse(halves[1]!)
    groups = [...head, ...new Array<number>(Math.max(0, 8 - head.length - tail.length)).fill(0), ...tail]
  } else {
    groups = parse(text)
  }
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n)
}

/**
 * Parses canonical IPv4 dotted quads and IPv6 text (no zone id). IPv4-mapped IPv6 (::ffff:a.b.c.d)
 * becomes the IPv4 address it carries, so one IPv4 rule covers both spellings.
 */
export function parseIp(text: string): Ip | undefined {
  const v4 = parseV4(text)
  if (v4 !== undefined) return { family: 4, value: v4 }
  const v6 = parseV6(text)
  if (v6 === undefined) return undefined
  if (v6 >> 32n === 0xffffn) return { family: 4, value: v6 & 0xffffffffn }
  return { family: 6, value: v6 }
}

/** Parses `addr` or `addr/prefix`; host bits are masked off. Undefined if it is not IP syntax. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/')
  const addr = slash === -1 ? text : text.slice(0, slash)
  const ip = parseIp(addr)
  if (!ip) return undefined
  const v6Text = !/^[\d.]+$/.test(addr)
  const width = ip.family === 4 ? 32 : 128
  let prefix = width
  if (slash !== -1) {
    const p = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p)) return undefined
    prefix = Number(p)
    // A mapped IPv6 CIDR (::ffff:10.0.0.0/104) covers the IPv4 network it carries.
    if (ip.family === 4 && v6Text) prefix -= 96
    if (prefix < 0 || prefix > width) return undefined
  }
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(width - prefix)
  return { family: ip.family, value: ip.value & mask, prefix, text }
}

export function contains(net: Cidr, ip: Ip): boolean {
  if (net.family !== ip.family) return false
  const shift = BigInt((ip.family === 4 ? 32 : 128) - net.prefix)
  return ip.value >> shift === net.value >> shift
}

/** Whether every address of `inner` is in `outer`. */
export function within(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && inner.prefix >= outer.prefix && contains(outer, inner)
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    const v = ip.value
    return `${v >> 24n}.${(v >> 16n) & 0xffn}.${(v >> 8n) & 0xffn}.${v & 0xffn}`
  }
  const groups: string[] = []
  for (let i = 7; i >= 0; i--) groups.push(((ip.value >> BigInt(i * 16)) & 0xffffn).toString(16))
  // Compress the longest run of zero groups (RFC 5952) for readable messages.
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  if (best === -1) return groups.join(':')
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`
}
