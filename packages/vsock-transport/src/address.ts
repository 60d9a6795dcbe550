import { isIPv4, isIPv6 } from 'node:net'
import { InvalidAddressError } from './errors.js'

/** Any CID: listen on every CID of this machine (VMADDR_CID_ANY, -1U). */
export const VMADDR_CID_ANY = 0xffffffff
/** Local loopback CID (needs the vsock_loopback transport). */
export const VMADDR_CID_LOCAL = 1
/** The host (hypervisor side) CID. */
export const VMADDR_CID_HOST = 2
/** The parent instance of a Nitro Enclave. */
export const VMADDR_CID_PARENT = 3
/** Any port: let the kernel pick one (VMADDR_PORT_ANY, -1U). */
export const VMADDR_PORT_ANY = 0xffffffff

const U32_MAX = 0xffffffff
/** sizeof(sockaddr_un.sun_path) - 1 on Linux: the longest Unix socket path. */
export const UNIX_PATH_MAX = 107

export type TransportAddress =
  | { scheme: 'vsock'; cid: number; port: number }
  | { scheme: 'unix'; path: string }
  | { scheme: 'tcp'; host: string; port: number }
  | { scheme: 'hvsock'; path: string; port: number }

export type TransportScheme = TransportAddress['scheme']

const CID_NAMES: Readonly<Record<string, number>> = Object.freeze({
  any: VMADDR_CID_ANY,
  local: VMADDR_CID_LOCAL,
  host: VMADDR_CID_HOST,
  parent: VMADDR_CID_PARENT,
})

const FORMS =
  'vsock://CID:PORT (CID a number or any|local|host|parent), unix:///abs/path, tcp://host:port ' +
  '(IPv6 as tcp://[::1]:port), hvsock:///abs/path:PORT'

function fail(input: string, why: string): never {
  throw new InvalidAddressError(
    `invalid transport address ${JSON.stringify(input)}: ${why}; valid forms: ${FORMS}`,
    {
      address: input,
    },
  )
}

function parseUint(text: string, max: number, input: string, what: string): number {
  if (!/^\d{1,10}$/.test(text)) fail(input, `${what} must be a decimal number from 0 to ${max}`)
  const value = Number(text)
  if (value > max) fail(input, `${what} ${value} is out of range 0..${max}`)
  return value
}

function checkPath(path: string, input: string, what: string): void {
  if (!path.startsWith('/')) fail(input, `${what} must be an absolute path (starting with /)`)
  if (path.includes('\0')) fail(input, `${what} contains a NUL byte`)
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})?)*\.?$/

function checkHost(host: string, input: string): void {
  if (isIPv4(host) || isIPv6(host) || HOSTNAME.test(host)) return
  fail(input, `host ${JSON.stringify(host)} is not an IPv4 address, an IPv6 address or a host name`)
}

function parseString(input: string): TransportAddress {
  const match = /^([a-z]+):\/\/(.*)$/s.exec(input)
  if (!match) fail(input, 'missing scheme')
  const scheme = match[1]!
  const rest = match[2]!
  switch (scheme) {
    case 'vsock': {
      const m = /^([^:]*):([^:]*)$/.exec(rest)
      if (!m) fail(input, 'expected vsock://CID:PORT')
      const cidText = m[1]!.toLowerCase()
      const cid = cidText in CID_NAMES ? CID_NAMES[cidText]! : parseUint(cidText, U32_MAX, input, 'CID')
      return { scheme: 'vsock', cid, port: parseUint(m[2]!, U32_MAX, input, 'port') }
    }
    case 'unix': {
      checkPath(rest, input, 'unix path')
      return { scheme: 'unix', path: rest }
    }
    case 'tcp': {
      const m = /^(?:\[([^\]]*)\]|([^:[\]/]*)):(\d*)$/.exec(rest)
      if (!m) fail(input, 'expected tcp://host:port or tcp://[ipv6]:port')
      const bracketed = m[1]
      const host = bracketed ?? m[2]!
      if (bracketed !== undefined && !isIPv6(bracketed)) fail(input, `[${bracketed}] is not an IPv6 address`)
      checkHost(host, input)
      return { scheme: 'tcp', host, port: parseUint(m[3]!, 65535, input, 'port') }
    }
    case 'hvsock': {
      const colon = rest.lastIndexOf(':')
      if (colon < 0) fail(input, 'expected hvsock:///abs/path:PORT')
      const path = rest.slice(0, colon)
      checkPath(path, input, 'hybrid vsock path')
      return { scheme: 'hvsock', path, port: parseUint(rest.slice(colon + 1), U32_MAX, input, 'port') }
    }
    default:
      fail(input, `unknown scheme ${JSON.stringify(scheme)}`)
  }
}

function isUint(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max
}

function checkObject(input: TransportAddress): TransportAddress {
  const shown = (() => {
    try {
      return JSON.stringify(input)
    } catch {
      return String(input)
    }
  })()
  const bad = (why: string): never => fail(shown, why)
  switch (input.scheme) {
    case 'vsock':
      if (!isUint(input.cid, U32_MAX)) bad('cid must be an integer from 0 to 4294967295')
      if (!isUint(input.port, U32_MAX)) bad('port must be an integer from 0 to 4294967295')
      return { scheme: 'vsock', cid: input.cid, port: input.port }
    case 'unix':
      if (typeof input.path !== 'string') bad('path must be a string')
      checkPath(input.path, shown, 'unix path')
      return { scheme: 'unix', path: input.path }
    case 'tcp':
      if (typeof input.host !== 'string') bad('host must be a string')
      checkHost(input.host, shown)
      if (!isUint(input.port, 65535)) bad('port must be an integer from 0 to 65535')
      return { scheme: 'tcp', host: input.host, port: input.port }
    case 'hvsock':
      if (typeof input.path !== 'string') bad('path must be a string')
      checkPath(input.path, shown, 'hybrid vsock path')
      if (!isUint(input.port, U32_MAX)) bad('port must be an integer from 0 to 4294967295')
      return { scheme: 'hvsock', path: input.path, port: input.port }
    default:
      return bad(`unknown scheme ${JSON.stringify((input as { scheme?: unknown }).scheme)}`)
  }
}

/**
 * Parses a transport URI (or checks an address object) into a new, frozen TransportAddress.
 * Throws InvalidAddressError naming the bad part and listing the valid forms.
 */
export function parseAddress(input: string | TransportAddress): TransportAddress {
  if (typeof input === 'string') return Object.freeze(parseString(input.trim()))
  if (input === null || typeof input !== 'object') {
    fail(String(input), 'expected a string or an address object')
  }
  return Object.freeze(checkObject(input))
}

/** The URI form of an address; `parseAddress(formatAddress(a))` equals `a`. */
export function formatAddress(address: TransportAddress): string {
  switch (address.scheme) {
    case 'vsock':
      return `vsock://${address.cid === VMADDR_CID_ANY ? 'any' : address.cid}:${address.port}`
    case 'unix':
      return `unix://${address.path}`
    case 'tcp':
      return isIPv6(address.host)
        ? `tcp://[${address.host}]:${address.port}`
        : `tcp://${address.host}:${address.port}`
    case 'hvsock':
      return `hvsock://${address.path}:${address.port}`
    default:
      throw new InvalidAddressError(
        `cannot format address with unknown scheme ${JSON.stringify((address as { scheme?: unknown }).scheme)}`,
      )
  }
}

/** Throws InvalidAddressError when a Unix socket path is too long for sockaddr_un. */
export function checkUnixPathLength(path: string, address: string): void {
  if (Buffer.byteLength(path) > UNIX_PATH_MAX) {
    throw new InvalidAddressError(
      `Unix socket path for ${address} is ${Buffer.byteLength(path)} bytes; Linux allows at most ${UNIX_PATH_MAX} ` +
        `(use a shorter directory: ${path})`,
      { address },
    )
  }
}
