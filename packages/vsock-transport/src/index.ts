/**
 * @enclave/vsock-transport: one address syntax and one net.Socket / net.Server API for AF_VSOCK,
 * hybrid vsock (Firecracker, Cloud Hypervisor), Unix and TCP sockets, plus a dev mode that maps
 * vsock to Unix sockets so enclave code runs unchanged on a laptop or in CI.
 *
 * @example
 * ```ts
 * import { connect, listen } from '@enclave/vsock-transport'
 * const server = await listen('vsock://any:5000', {}, (socket) => socket.pipe(socket))
 * const socket = await connect('vsock://16:5000', { timeoutMs: 5000 })
 * ```
 */
import net from 'node:net'
import { parseAddress, type TransportAddress } from './address.js'
import { connectDev, listenDev } from './dev.js'
import { connectHybrid, listenHybrid } from './hybrid.js'
import {
  type ConnectOptions,
  type ListenOptions,
  resolveConnectOptions,
  resolveListenOptions,
} from './options.js'
import { boundAddress, dialled, vsockSockets } from './registry.js'
import { connectTcp, listenTcp } from './tcp.js'
import { connectUnix, listenUnix } from './unix.js'
import { connectVsock, listenVsock, vsockPeer } from './vsock.js'

export {
  formatAddress,
  parseAddress,
  type TransportAddress,
  type TransportScheme,
  UNIX_PATH_MAX,
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_CID_LOCAL,
  VMADDR_CID_PARENT,
  VMADDR_PORT_ANY,
} from './address.js'
export { devSocketPath, type VsockAddressInfo } from './dev.js'
export {
  AbortError,
  AddressInUseError,
  ConnectError,
  ConnectionRefusedError,
  ConnectTimeoutError,
  ERROR_CLASSES,
  HandshakeError,
  InvalidAddressError,
  InvalidOptionError,
  ListenError,
  NoOriginalDestinationError,
  SystemError,
  TransportError,
  type TransportErrorCode,
  type TransportErrorOptions,
  UnreachableError,
  UnsupportedSocketError,
  VsockUnavailableError,
} from './errors.js'
export {
  type ConnectOptions,
  DEFAULTS,
  type DevModeOptions,
  type ListenOptions,
  type ResolvedDevMode,
} from './options.js'
export {
  type KernelRelay,
  type KernelRelayResult,
  type KernelRelayUnavailable,
  kernelRelay,
} from './relay.js'
export { localCid, type OriginalDestination, originalDestination } from './sockopt.js'

/**
 * Connects to `address`. Resolves with a connected net.Socket (for hvsock: after the `OK` line);
 * rejects with a TransportError subclass (ConnectionRefusedError, UnreachableError,
 * ConnectTimeoutError, AbortError, VsockUnavailableError, ...).
 */
export async function connect(
  address: string | TransportAddress,
  options?: ConnectOptions,
): Promise<net.Socket> {
  const parsed = parseAddress(address)
  const resolved = resolveConnectOptions(options)
  switch (parsed.scheme) {
    case 'tcp':
      return connectTcp(parsed, resolved)
    case 'unix':
      return connectUnix(parsed, resolved)
    case 'hvsock':
      return connectHybrid(parsed, resolved)
    case 'vsock':
      return resolved.dev ? connectDev(parsed, resolved, resolved.dev) : connectVsock(parsed, resolved)
  }
}

/**
 * Listens on `address`. Resolves once listening with a net.Server that emits 'connection' with
 * net.Socket objects; `onConnection` is attached as a 'connection' listener. Port 0 picks a free
 * port on every scheme (see serverAddressOf). Rejects with AddressInUseError, ListenError,
 * AbortError, VsockUnavailableError, ...
 */
export async function listen(
  address: string | TransportAddress,
  options?: ListenOptions,
  onConnection?: (socket: net.Socket) => void,
): Promise<net.Server> {
  const parsed = parseAddress(address)
  const resolved = resolveListenOptions(options)
  const server = net.createServer({ allowHalfOpen: resolved.allowHalfOpen })
  if (onConnection) server.on('connection', onConnection)
  switch (parsed.scheme) {
    case 'tcp':
      return listenTcp(parsed, resolved, server)
    case 'unix':
      return listenUnix(parsed, resolved, server)
    case 'hvsock':
      return listenHybrid(parsed, resolved, server)
    case 'vsock':
      return resolved.dev
        ? listenDev(parsed, resolved, resolved.dev, server)
        : listenVsock(parsed, resolved, server)
  }
}

/**
 * The peer of a socket: the address it dialled (sockets from connect()), the vsock CID and port
 * from getpeername (accepted AF_VSOCK sockets), the remote IP and port (accepted TCP sockets);
 * undefined where the peer has no address (accepted Unix, dev-mode and hvsock sockets).
 */
export function peerAddressOf(socket: net.Socket): TransportAddress | undefined {
  const known = dialled.get(socket)
  if (known) return known
  if (vsockSockets.has(socket)) return vsockPeer(socket)
  if (socket.remoteAddress !== undefined && socket.remotePort !== undefined) {
    return { scheme: 'tcp', host: socket.remoteAddress, port: socket.remotePort }
  }
  return undefined
}

/**
 * The address a server from listen() is bound to, with the port the system picked for port 0;
 * `formatAddress(serverAddressOf(server))` is what clients dial. Undefined for other servers.
 */
export function serverAddressOf(server: net.Server): TransportAddress | undefined {
  return boundAddress.get(server)?.()
}
