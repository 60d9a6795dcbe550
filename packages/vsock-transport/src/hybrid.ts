import type net from 'node:net'
import { checkUnixPathLength, formatAddress, type TransportAddress } from './address.js'
import { guardedAttempt } from './attempt.js'
import { listenPortPath } from './ephemeral.js'
import { ConnectionRefusedError, HandshakeError } from './errors.js'
import type { ResolvedConnectOptions, ResolvedListenOptions } from './options.js'
import { boundAddress, dialled } from './registry.js'
import { bindLifetimeSignal, openNetSocket } from './stream.js'

/**
 * Hybrid vsock as Firecracker and Cloud Hypervisor expose it: one Unix socket multiplexes the
 * guest's vsock ports. Host→guest: connect to the socket, send `CONNECT <port>\n`, read
 * `OK <host port>\n`, then the stream is the guest's. Guest→host: the VMM connects to the Unix
 * socket `<path>_<port>` on the host.
 */
type HybridAddress = Extract<TransportAddress, { scheme: 'hvsock' }>

/** Longest reply line accepted: "OK " + a u32 + "\n" fits easily; more is a protocol error. */
const MAX_REPLY = 64

/** Unix socket on which guest→host connections to `port` arrive. */
export function hybridListenPath(path: string, port: number): string {
  return `${path}_${port}`
}

/** Sends CONNECT and reads the OK line; bytes after the line are pushed back into the socket. */
function handshake(socket: net.Socket, port: number, text: string, cancel: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0)
    const cleanup = () => {
      socket.off('readable', onReadable)
      socket.off('end', onEnd)
      socket.off('error', onError)
      cancel.removeEventListener('abort', onAbort)
    }
    const fail = (err: unknown) => {
      cleanup()
      socket.destroy()
      reject(err)
    }
    const onReadable = () => {
      for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
        buffered = Buffer.concat([buffered, chunk])
        const newline = buffered.indexOf(0x0a)
        if (newline < 0) {
          if (buffered.length > MAX_REPLY) {
            fail(
              new HandshakeError(
                `${text}: the multiplexer's reply exceeds ${MAX_REPLY} bytes without a newline`,
                {
                  address: text,
                },
              ),
            )
            return
          }
          continue
        }
        const line = buffered.subarray(0, newline).toString('latin1')
        const match = /^OK (\d{1,10})$/.exec(line)
        if (!match) {
          fail(
            new HandshakeError(
              `${text}: expected "OK <port>" after CONNECT ${port}, got ${JSON.stringify(line.slice(0, MAX_REPLY))}`,
              { address: text },
            ),
          )
          return
        }
        cleanup()
        const rest = buffered.subarray(newline + 1)
        if (rest.length > 0) socket.unshift(rest)
        resolve(Number(match[1]))
        return
      }
    }
    const onEnd = () =>
      fail(
        new ConnectionRefusedError(
          `nothing listens on ${text}: the hybrid vsock multiplexer closed the connection after CONNECT ${port}`,
          { address: text },
        ),
      )
    const onError = (err: Error) => fail(err)
    const onAbort = () => fail(cancel.reason)
    socket.on('readable', onReadable)
    socket.once('end', onEnd)
    socket.once('error', onError)
    cancel.addEventListener('abort', onAbort, { once: true })
    socket.write(`CONNECT ${port}\n`)
  })
}

export async function connectHybrid(
  address: HybridAddress,
  options: ResolvedConnectOptions,
): Promise<net.Socket> {
  const text = formatAddress(address)
  checkUnixPathLength(address.path, text)
  const socket = await guardedAttempt(text, options, async (cancel) => {
    const socket = await openNetSocket({ path: address.path, allowHalfOpen: true }, cancel)
    await handshake(socket, address.port, text, cancel)
    // allowHalfOpen stays true during the handshake so an early EOF is seen, not auto-answered.
    ;(socket as unknown as { allowHalfOpen: boolean }).allowHalfOpen = options.allowHalfOpen
    return socket
  })
  dialled.set(socket, address)
  bindLifetimeSignal(socket, options.signal, text)
  return socket
}

export async function listenHybrid(
  address: HybridAddress,
  options: ResolvedListenOptions,
  server: net.Server,
): Promise<net.Server> {
  const text = formatAddress(address)
  checkUnixPathLength(hybridListenPath(address.path, 4294967295), text)
  const port = await listenPortPath(
    server,
    address.port,
    (p) => hybridListenPath(address.path, p),
    (p) => formatAddress({ ...address, port: p }),
    options.backlog,
    options.signal,
  )
  boundAddress.set(server, () => ({ scheme: 'hvsock', path: address.path, port }))
  return server
}
