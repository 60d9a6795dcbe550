import type net from 'node:net'
import { formatAddress, type TransportAddress } from './address.js'
import { guardedAttempt } from './attempt.js'
import type { ResolvedConnectOptions, ResolvedListenOptions } from './options.js'
import { boundAddress, dialled } from './registry.js'
import { bindLifetimeSignal, listenServer, openNetSocket } from './stream.js'

type TcpAddress = Extract<TransportAddress, { scheme: 'tcp' }>

export async function connectTcp(address: TcpAddress, options: ResolvedConnectOptions): Promise<net.Socket> {
  const text = formatAddress(address)
  const socket = await guardedAttempt(text, options, (cancel) =>
    openNetSocket({ host: address.host, port: address.port, allowHalfOpen: options.allowHalfOpen }, cancel),
  )
  dialled.set(socket, address)
  bindLifetimeSignal(socket, options.signal, text)
  return socket
}

export async function listenTcp(address: TcpAddress, options: ResolvedListenOptions, server: net.Server) {
  await listenServer(
    server,
    { host: address.host, port: address.port, backlog: options.backlog },
    formatAddress(address),
    options.signal,
  )
  const host = address.host
  boundAddress.set(server, () => {
    const info = server.address() as net.AddressInfo | null
    return { scheme: 'tcp', host: info?.address ?? host, port: info?.port ?? address.port }
  })
  return server
}
