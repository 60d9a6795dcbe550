// PROXY protocol version 2 (HAProxy's spec, section 2.2): a binary header that carries the client's
// address ahead of the stream, so an app behind a relay still learns who connected.
import { isIPv4, isIPv6 } from 'node:net'
import { MalformedProxyHeaderError } from './errors.js'

export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
])

/** TLV types this package writes (spec 2.2.7). */
export const PP2_TYPE_AUTHORITY = 0x02
export const PP2_TYPE_SSL = 0x20
export const PP2_SUBTYPE_SSL_VERSION = 0x21
export const PP2_SUBTYPE_SSL_CN = 0x22
export const PP2_CLIENT_SSL = 0x01
export const PP2_CLIENT_CERT_CONN = 0x02

export interface Endpoint {
  readonly address: string
  readonly port: number
}

export interface Tlv {
  readonly type: number
  readonly value: Buffer
}

/** A decoded header: `proxy` carries addresses (or none for an unknown family), `local` none. */
export interface ProxyHeader {
  readonly command: 'local' | 'proxy'
  readonly family: 'ipv4' | 'ipv6' | 'unspec'
  readonly source?: Endpoint
  readonly destination?: Endpoint
  readonly tlvs: readonly Tlv[]
}

/** The largest header accepted: 16 fixed bytes and up to 4 KiB of addresses and TLVs by default. */
export const DEFAULT_MAX_HEADER_BYTES = 16 + 4096

function unmap(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address
}

function ipv6Bytes(address: string): Buffer {
  // Expand '::' and a trailing dotted quad into eight 16-bit groups.
  // A zone id (fe80::1%eth0) names an interface of the relay, not part of the address.
  let text = address.split('%')[0]!
  const lastColon = text.lastIndexOf(':')
  const tail = text.slice(lastColon + 1)
  if (tail.includes('.')) {
    const [a, b, c, d] = tail.split('.').map(Number) as [number, number, number, number]
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', rest] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const r = rest === undefined || rest === '' ? [] : rest.split(':')
  const groups =
    rest === undefined ? h : [...h, ...new Array<string>(8 - h.length - r.length).fill('0'), ...r]
  const out = Buffer.alloc(16)
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2)
  return out
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  return groups.join(':')
}

function encodeTlvs(tlvs: readonly Tlv[]): Buffer {
  return Buffer.concat(
    tlvs.map(({ type, value }) => {
      const head = Buffer.alloc(3)
      head[0] = type
      head.writeUInt16BE(value.length, 1)
      return Buffer.concat([head, value])
    }),
  )
}

/** A TLV of type PP2_TYPE_SSL describing the client's TLS session (verify = 0 means verified). */
export function sslTlv({
  version,
  commonName,
  verified,
}: {
  version?: string
  commonName?: string
  verified: boolean
}): Tlv {
  const subs: Tlv[] = []
  if (version) subs.push({ type: PP2_SUBTYPE_SSL_VERSION, value: Buffer.from(version) })
  if (commonName) subs.push({ type: PP2_SUBTYPE_SSL_CN, value: Buffer.from(commonName) })
  const head = Buffer.alloc(5)
  head[0] = PP2_CLIENT_SSL | (commonName !== undefined ? PP2_CLIENT_CERT_CONN : 0)
  head.writeUInt32BE(verified ? 0 : 1, 1)
  return { type: PP2_TYPE_SSL, value: Buffer.concat([head, encodeTlvs(subs)]) }
}

/**
 * Encodes a v2 header. With both endpoints of one family it is PROXY over TCP with addresses;
 * without endpoints (or mixed families) it is PROXY with family UNSPEC, which receivers must
 * accept and treat as "no address"; `local` is the health-check form.
 */
export function encodeProxyV2(
  header: {
    command?: 'proxy' | 'local'
    source?: Endpoint
    destination?: Endpoint
    tlvs?: readonly Tlv[]
  } = {},
): Buffer {
  const command = header.command ?? 'proxy'
  const src = header.source && unmap(header.source.address)
  const dst = header.destination && unmap(header.destination.address)
  let famByte = 0x00
  let addresses = Buffer.alloc(0)
  if (command === 'proxy' && src && dst && header.source && header.destination) {
    const ports = Buffer.alloc(4)
    ports.writeUInt16BE(header.source.port, 0)
    ports.writeUInt16BE(header.destination.port, 2)
    if (isIPv4(src) && isIPv4(dst)) {
      famByte = 0x11
      addresses = Buffer.concat([
        Buffer.from(src.split('.').map(Number)),
        Buffer.from(dst.split('.').map(Number)),
        ports,
      ])
    } else if (isIPv6(src) && isIPv6(dst)) {
      famByte = 0x21
      addresses = Buffer.concat([ipv6Bytes(src), ipv6Bytes(dst), ports])
    }
  }
  const tlvs = encodeTlvs(header.tlvs ?? [])
  const length = addresses.length + tlvs.length
  if (length > 0xffff) throw new MalformedProxyHeaderError(`header body of ${length} bytes exceeds 65535`)
  const fixed = Buffer.alloc(16)
  PROXY_V2_SIGNATURE.copy(fixed, 0)
  fixed[12] = command === 'proxy' ? 0x21 : 0x20
  fixed[13] = famByte
  fixed.writeUInt16BE(length, 14)
  return Buffer.concat([fixed, addresses, tlvs])
}

function decodeTlvs(bytes: Buffer): Tlv[] {
  const tlvs: Tlv[] = []
  let offset = 0
  while (offset < bytes.length) {
    if (offset + 3 > bytes.length) throw new MalformedProxyHeaderError('truncated TLV')
    const length = bytes.readUInt16BE(offset + 1)
    if (offset + 3 + length > bytes.length) throw new MalformedProxyHeaderError('TLV runs past the header')
    tlvs.push({ type: bytes[offset]!, value: Buffer.from(bytes.subarray(offset + 3, offset + 3 + length)) })
    offset += 3 + length
  }
  return tlvs
}

/** Incremental decoder: push chunks until it returns the header and the bytes after it. */
export class ProxyV2Decoder {
  private buffered: Buffer = Buffer.alloc(0)
  constructor(private readonly maxBytes = DEFAULT_MAX_HEADER_BYTES) {}

  push(chunk: Buffer): { value: ProxyHeader; rest: Buffer } | undefined {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    const b = this.buffered
    const sig = Math.min(b.length, 12)
    if (!b.subarray(0, sig).equals(PROXY_V2_SIGNATURE.subarray(0, sig)))
      throw new MalformedProxyHeaderError('bad signature')
    if (b.length < 16) return undefined
    const verCmd = b[12]!
    if (verCmd >> 4 !== 2) throw new MalformedProxyHeaderError(`version ${verCmd >> 4} is not 2`)
    const cmd = verCmd & 0x0f
    if (cmd > 1) throw new MalformedProxyHeaderError(`unknown command ${cmd}`)
    const length = b.readUInt16BE(14)
    if (16 + length > this.maxBytes)
      throw new MalformedProxyHeaderError(`header of ${16 + length} bytes exceeds ${this.maxBytes}`)
    if (b.length < 16 + length) return undefined
    const body = b.subarray(16, 16 + length)
    const rest = Buffer.from(b.subarray(16 + length))
    const fam = b[13]!
    const command = cmd === 1 ? 'proxy' : 'local'
    let family: ProxyHeader['family'] = 'unspec'
    let source: Endpoint | undefined
    let destination: Endpoint | undefined
    let tlvStart = 0
    // Addresses are only meaningful for PROXY over TCP/UDP of a known family; else skip them.
    if (command === 'proxy' && (fam === 0x11 || fam === 0x12)) {
      if (length < 12) throw new MalformedProxyHeaderError('IPv4 address block is shorter than 12 bytes')
      family = 'ipv4'
      source = { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) }
      destination = { address: [...body.subarray(4, 8)].join('.'), port: body.readUInt16BE(10) }
      tlvStart = 12
    } else if (command === 'proxy' && (fam === 0x21 || fam === 0x22)) {
      if (length < 36) throw new MalformedProxyHeaderError('IPv6 address block is shorter than 36 bytes')
      family = 'ipv6'
      source = { address: ipv6Text(body.subarray(0, 16)), port: body.readUInt16BE(32) }
      destination = { address: ipv6Text(body.subarray(16, 32)), port: body.readUInt16BE(34) }
      tlvStart = 36
    } else if (fam === 0x31 || fam === 0x32) {
      tlvStart = Math.min(216, length)
    } else if (fam !== 0x00 && command === 'proxy') {
      throw new MalformedProxyHeaderError(`unknown address family byte 0x${fam.toString(16)}`)
    } else {
      tlvStart = length
    }
    const tlvs = tlvStart < length ? decodeTlvs(body.subarray(tlvStart)) : []
    return {
      value: {
        command,
        family,
        ...(source ? { source } : {}),
        ...(destination ? { destination } : {}),
        tlvs,
      },
      rest,
    }
  }
}
