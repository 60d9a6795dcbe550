import { BasePreambleDecoder, type DecodeResult } from './decoder.js'
import { InvalidAddressError, InvalidValueError, MalformedHeaderError } from './errors.js'
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from './ip.js'

/**
 * The pre-NAT destination of a transparently proxied connection, as Sentient pf-proxy's
 * ip-to-vsock-transparent sends it ahead of the payload. Same shape as
 * @enclave/vsock-transport's originalDestination().
 */
export interface OriginalDestination {
  /** IPv4 dotted quad or RFC 5952 IPv6 text (decoded form); any literal IP when encoding. */
  host: string
  port: number
  family: 4 | 6
}

const IPV4_HEADER_LENGTH = 7 // version, 4 address bytes, 2 port bytes
const IPV6_HEADER_LENGTH = 19 // version, 16 address bytes, 2 port bytes

/** The header's length for a family: 7 bytes for IPv4, 19 for IPv6. */
export function originalDestinationLength(family: 4 | 6): number {
  return family === 4 ? IPV4_HEADER_LENGTH : IPV6_HEADER_LENGTH
}

/**
 * Encodes the header: the IP version byte, the address as a little-endian u32/u128 (octets
 * reversed from network order) and the port as a u16 little-endian. 1.2.3.4:443 → 04 04 03 02 01 BB 01.
 * `family`, when given, must match the host.
 */
export function encodeOriginalDestination(destination: {
  host: string
  port: number
  family?: 4 | 6
}): Buffer {
  const { host, port, family } = destination
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new InvalidValueError(`port must be an integer from 0 to 65535; got ${String(port)}`)
  }
  if (typeof host !== 'string') throw new InvalidAddressError(`host must be a string; got ${typeof host}`)
  const v4 = family === 6 ? undefined : parseIPv4(host)
  const address = v4 ?? (family === 4 ? undefined : parseIPv6(host))
  if (address === undefined) {
    throw new InvalidAddressError(
      `host ${JSON.stringify(host)} is not a literal ${family ? `IPv${family}` : 'IPv4 or IPv6'} address; resolve names before encoding (zone ids are not allowed)`,
    )
  }
  const out = Buffer.allocUnsafe(1 + address.length + 2)
  out[0] = address.length === 4 ? 4 : 6
  // Little-endian integer of a network-order address = its octets reversed.
  for (let i = 0; i < address.length; i++) out[1 + i] = address[address.length - 1 - i]!
  out.writeUInt16LE(port, 1 + address.length)
  return out
}

/**
 * Decodes the header from the start of `bytes`. Rejects a bad version byte at once; returns
 * undefined until the whole header (7 or 19 bytes) is there. Bytes after it are the payload.
 */
export function decodeOriginalDestination(bytes: Uint8Array): DecodeResult<OriginalDestination> {
  if (bytes.length === 0) return undefined
  const version = bytes[0]!
  if (version !== 4 && version !== 6) {
    throw new MalformedHeaderError(
      `the original-destination header starts with IP version ${version}; expected 4 or 6 (is the peer a Sentient pf-proxy transparent sender? Marlin's oyster proxy sends no version byte)`,
    )
  }
  const length = originalDestinationLength(version)
  if (bytes.length < length) return undefined
  const size = length - 3
  const address = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i++) address[i] = bytes[size - i]!
  const port = bytes[1 + size]! | (bytes[2 + size]! << 8)
  const host = version === 4 ? formatIPv4(address) : formatIPv6(address)
  return { value: { host, port, family: version }, bytesRead: length }
}

/**
 * Reads the header off the front of a connection; the bytes after it (remaining()) are the
 * first payload bytes and must be forwarded before anything read later.
 */
export class OriginalDestinationDecoder extends BasePreambleDecoder<OriginalDestination> {
  protected readonly maxLength = IPV6_HEADER_LENGTH
  protected readonly what = 'original-destination header'

  protected decode(bytes: Buffer): DecodeResult<OriginalDestination> {
    return decodeOriginalDestination(bytes)
  }
}
