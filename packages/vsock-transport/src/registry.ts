import type net from 'node:net'
import type { TransportAddress } from './address.js'

/**
 * What the package knows about the sockets and servers it made: the address a client socket
 * dialled, the address a server is bound to, and which accepted sockets are AF_VSOCK (their peer
 * comes from getpeername). Weak maps, so nothing here keeps a socket alive.
 */
export const dialled = new WeakMap<net.Socket, TransportAddress>()
export const boundAddress = new WeakMap<net.Server, () => TransportAddress>()
export const vsockSockets = new WeakSet<net.Socket>()
