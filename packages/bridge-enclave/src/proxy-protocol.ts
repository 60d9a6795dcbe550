import { isIP, type Socket } from 'node:net'
import { ProxyHeaderError } from './errors.js'
import { ReadFailure, SocketReader } from './reader.js'

/**
 * PROXY protocol v1 (HAProxy's text header), opt-in on server tunnels: the host writes one line
 * naming the TCP client before the relayed bytes, so the enclave learns who connected (the Go
 * bridge never passes the client's address on). At most 107 bytes including CRLF.
 */
export const PROXY_V1_MAX_BYTES = 107

export type ProxyHeader =
  | {
      family: 'TCP4' | 'TCP6'
      source: string
      sourcePort: number
      destination: string
      destinationPort: number
    }
  | { family: 'UNKNOWN' }

/** The header line (with CRLF) for one connection. */
export function encodeProxyV1(header: ProxyHeader): string {
  if (header.family === 'UNKNOWN') return 'PROXY UNKNOWN\r\n'
  return `PROXY ${header.family} ${header.source} ${header.destination} ${header.sourcePort} ${header.destinationPort}\r\n`
}

/** The header describing a TCP socket's peer (source) and local end (destination). */
export function proxyHeaderOf(socket: Socket): ProxyHeader {
  const { remoteAddress, remotePort, localAddress, localPort } = socket
  if (!remoteAddress || !localAddress || remotePort === undefined || localPort === undefined)
    return { family: 'UNKNOWN' }
  const mapped = (a: string): string => (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a)
  const source = mapped(remoteAddress)
  const destination = mapped(localAddress)
  const family = isIP(source) === 4 && isIP(destination) === 4 ? 'TCP4' : 'TCP6'
  if (family === 'TCP6' && (isIP(source) !== 6 || isIP(destination) !== 6)) return { family: 'UNKNOWN' }
  return { family, source, sourcePort: remotePort, destination, destinationPort: localPort }
}

function port(text: string, line: string): number {
  if (!/^(0|[1-9]\d{0,4})$/.test(text) || Number(text) > 65535) {
    throw new ProxyHeaderError(`port "${text}" is not valid in ${JSON.stringify(line)}`)
  }
  return Number(text)
}

/** Parses one header line (without CRLF). Throws ProxyHeaderError naming what is wrong. */
export function parseProxyV1(line: string): ProxyHeader {
  const parts = line.split(' ')
  if (parts[0] !== 'PROXY')
    throw new ProxyHeaderError(`expected "PROXY ..." but got ${JSON.stringify(line.slice(0, 40))}`)
  if (parts[1] === 'UNKNOWN') return { family: 'UNKNOWN' }
  if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) {
    throw new ProxyHeaderError(`malformed PROXY v1 header ${JSON.stringify(line)}`)
  }
  const family = parts[1]
  const want = family === 'TCP4' ? 4 : 6
  const [source, destination] = [parts[2] as string, parts[3] as string]
  if (isIP(source) !== want || isIP(destination) !== want) {
    throw new ProxyHeaderError(`addresses in ${JSON.stringify(line)} are not IPv${want}`)
  }
  return {
    family,
    source,
    destination,
    sourcePort: port(parts[4] as string, line),
    destinationPort: port(parts[5] as string, line),
  }
}

/**
 * Reads the PROXY v1 header off a freshly accepted socket; bytes after it stay readable on the
 * socket. Rejects with ProxyHeaderError on a malformed, missing (timeout) or over-long header.
 */
export async function readProxyHeader(socket: Socket, { timeoutMs = 10_000 } = {}): Promise<ProxyHeader> {
  const reader = new SocketReader(socket, { highWaterMark: PROXY_V1_MAX_BYTES })
  try {
    const line = await reader.readLine(PROXY_V1_MAX_BYTES - 1, { timeoutMs, what: 'the PROXY header' })
    const text = line.toString('latin1')
    if (!text.endsWith('\r')) throw new ProxyHeaderError('the PROXY header must end with CRLF')
    return parseProxyV1(text.slice(0, -1))
  } catch (err) {
    if (err instanceof ReadFailure) throw new ProxyHeaderError(err.message, { cause: err })
    throw err
  } finally {
    const rest = reader.release()
    if (rest.length > 0) socket.unshift(rest)
  }
}
