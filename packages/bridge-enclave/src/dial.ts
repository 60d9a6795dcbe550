import type { Socket } from 'node:net'
import { connect, type DevModeOptions } from '@enclave/vsock-transport'
import { BRIDGE_HOST_CID, CLIENT_DIAL_TIMEOUT_MS, MAX_DIAL_ERROR_LINE_BYTES, NAK_BYTE } from './constants.js'
import { AbortedError, DestinationDeniedError, DialFailedError, InvalidOptionError } from './errors.js'
import { ReadFailure, SocketReader } from './reader.js'

/** Options of `dialThroughBridge`: which client tunnel to use. */
export interface DialOptions {
  /** The tunnel's `enclaveDialPort` (the host listens there). */
  port: number
  /** @default 3 */
  hostCid?: number
  /**
   * Give up waiting for the host's answer after this long, in ms (the host's own dial gives up
   * after 10 s, so the default leaves it room to answer).
   * @default 15000
   */
  timeoutMs?: number
  signal?: AbortSignal
  dev?: DevModeOptions | false
}

/** `host:port` as the host's Go-compatible parser expects it (IPv6 in brackets). */
export function formatTarget(host: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidOptionError(`target port must be an integer from 1 to 65535, got ${String(port)}`)
  }
  if (host === '' || /[\s\n\r]/.test(host))
    throw new InvalidOptionError(`target host ${JSON.stringify(host)} is not valid`)
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  return bare.includes(':') ? `[${bare}]:${port}` : `${bare}:${port}`
}

function failureFrom(target: string, line: Buffer): Error {
  if (line[0] !== NAK_BYTE) {
    return new DialFailedError(
      target,
      'EPROTO',
      `unexpected answer from the host: ${JSON.stringify(line.toString('latin1'))}`,
    )
  }
  let parsed: { code?: unknown; message?: unknown } = {}
  try {
    parsed = JSON.parse(line.subarray(1).toString('utf8')) as typeof parsed
  } catch {
    // Not our JSON: report the raw text.
  }
  const code = typeof parsed.code === 'string' ? parsed.code : 'UNKNOWN'
  const message = typeof parsed.message === 'string' ? parsed.message : line.subarray(1).toString('utf8')
  if (code === 'EDENIED') return new DestinationDeniedError(target, message)
  return new DialFailedError(target, code, message)
}

/**
 * Opens a TCP connection from inside the enclave through a client tunnel: dials the host's vsock
 * port, asks for `host:port`, and resolves with the socket once the host has connected (ACK).
 * A refused or failed dial rejects with DialFailedError / DestinationDeniedError naming the cause.
 */
export async function dialThroughBridge(
  host: string,
  targetPort: number,
  options: DialOptions,
): Promise<Socket> {
  const target = formatTarget(host, targetPort)
  const timeoutMs = options.timeoutMs ?? CLIENT_DIAL_TIMEOUT_MS + 5000
  const hostCid = options.hostCid ?? BRIDGE_HOST_CID
  let socket: Socket
  try {
    socket = await connect(`vsock://${hostCid}:${options.port}`, {
      timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.dev !== undefined ? { dev: options.dev } : {}),
    })
  } catch (err) {
    if (options.signal?.aborted) throw new AbortedError(`the dial to ${target}`, { cause: err })
    throw new DialFailedError(
      target,
      'ENOTUNNEL',
      `cannot reach the client tunnel on vsock ${hostCid}:${options.port} (is it in the handshake's clients?): ${(err as Error).message}`,
      { cause: err },
    )
  }
  const reader = new SocketReader(socket, { highWaterMark: MAX_DIAL_ERROR_LINE_BYTES })
  try {
    socket.write(`${target}\n`)
    const line = await reader.readLine(MAX_DIAL_ERROR_LINE_BYTES, {
      timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      what: "the host's answer",
    })
    if (line.length !== 1 || line[0] !== 0x06) throw failureFrom(target, line)
  } catch (err) {
    reader.release()
    socket.destroy()
    if (err instanceof ReadFailure) {
      if (err.reason === 'aborted') throw new AbortedError(`the dial to ${target}`, { cause: err })
      if (err.reason === 'closed') {
        throw new DialFailedError(
          target,
          'ECLOSED',
          'the host closed the tunnel without answering (a Go enclave-bridge host does this when its dial fails)',
          { cause: err },
        )
      }
      throw new DialFailedError(target, err.reason === 'timeout' ? 'ETIMEDOUT' : 'EPROTO', err.message, {
        cause: err,
      })
    }
    throw err
  }
  const rest = reader.release()
  if (rest.length > 0) socket.unshift(rest)
  return socket
}
