import type { Socket } from 'node:net'
import { readPrefix } from '@enclave/tunnel'
import { connect, type DevModeOptions } from '@enclave/vsock-transport'
import {
  DialFailedError,
  EgressError,
  HostUnreachableError,
  InvalidHostError,
  RefusedError,
  ResolveFailedError,
  TimeoutError,
} from './errors.js'
import { checkDestination, type EgressPolicy, normalizeHost } from './policy.js'
import { encodeRequest, MessageDecoder, parseReply } from './wire.js'

export interface TunnelOpenerOptions {
  readonly policy: EgressPolicy
  readonly hostAddress: string
  readonly connectTimeoutMs: number
  readonly replyTimeoutMs: number
  readonly dev: DevModeOptions | false | undefined
}

/** Opens one tunnel through the host half: `socket` is paused, `rest` is data already read past the reply. */
export type OpenTunnel = (rawHost: string, port: number) => Promise<{ socket: Socket; rest: Buffer }>

function errorFromFailure(
  failure: { code?: string; message: string; rule?: string; os_code: number },
  destination: string,
): EgressError {
  switch (failure.code) {
    case 'ENCLAVE_EGRESS_REFUSED':
      return new RefusedError(destination, failure.rule ?? 'the host egress policy')
    case 'ENCLAVE_EGRESS_TIMEOUT':
      return new TimeoutError(`the host reaching ${destination}`, 0)
    case 'ENCLAVE_EGRESS_RESOLVE_FAILED':
      return new ResolveFailedError(destination, { cause: failure.message })
    case 'ENCLAVE_EGRESS_INVALID_HOST':
      return new InvalidHostError(destination, failure.message)
    default:
      // enclaver's host sends only an errno: 110 is ETIMEDOUT.
      if (failure.os_code === 110) return new TimeoutError(`the host reaching ${destination}`, 0)
      return new DialFailedError(destination, { cause: failure.message })
  }
}

/** The enclave side of the vsock 17002 handshake, shared by the HTTP proxy and transparent mode. */
export function tunnelOpener({
  policy,
  hostAddress,
  connectTimeoutMs,
  replyTimeoutMs,
  dev,
}: TunnelOpenerOptions): OpenTunnel {
  const devOption = dev === undefined ? {} : { dev }
  return async (rawHost: string, port: number): Promise<{ socket: Socket; rest: Buffer }> => {
    const destination = normalizeHost(rawHost)
    const where = `${destination.host}:${port}`
    const verdict = checkDestination(policy, destination)
    if (!verdict.allowed) throw new RefusedError(destination.host, verdict.rule)
    let socket: Socket
    try {
      socket = await connect(hostAddress, { ...devOption, timeoutMs: connectTimeoutMs })
    } catch (cause) {
      throw new HostUnreachableError(hostAddress, { cause })
    }
    socket.on('error', () => {})
    socket.write(encodeRequest({ host: destination.host, port }))
    const decoder = new MessageDecoder()
    try {
      const { value, rest } = await readPrefix(socket, (chunk) => decoder.push(chunk), {
        signal: AbortSignal.timeout(replyTimeoutMs),
        maxBytes: 8192,
      })
      const reply = parseReply(value)
      if (reply !== 'Ok') throw errorFromFailure(reply.Err, where)
      return { socket, rest }
    } catch (error) {
      socket.destroy()
      if (error instanceof EgressError) throw error
      if ((error as Error)?.name === 'TimeoutError')
        throw new TimeoutError(`waiting for the host to reach ${where}`, replyTimeoutMs)
      throw new HostUnreachableError(hostAddress, { cause: error })
    }
  }
}
