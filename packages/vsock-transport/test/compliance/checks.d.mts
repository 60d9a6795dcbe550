import type net from 'node:net'

/** The slice of the package API the checks use (src in vitest, dist in the guest). */
export interface TransportApi {
  connect(address: string, options?: object): Promise<net.Socket>
  listen(address: string, options?: object, onConnection?: (socket: net.Socket) => void): Promise<net.Server>
  formatAddress(address: object): string
  parseAddress(address: string): object
  serverAddressOf(server: net.Server): object | undefined
  peerAddressOf(socket: net.Socket): object | undefined
}

export interface Target {
  api: TransportApi
  /** A fresh address to listen on (port 0 / a new temp path). */
  makeAddress: () => string
  /** The address a client dials to reach `server`; default formatAddress(serverAddressOf(server)). */
  dialAddressOf?: (server: net.Server) => string
  connectOptions?: object
  listenOptions?: object
  /** Asserts what peerAddressOf says on the accepting side. */
  checkServerPeer?: (peer: object | undefined, client: net.Socket) => void
}

export type Check = (target: Target) => Promise<void>
export const checks: Readonly<Record<string, Check>>
