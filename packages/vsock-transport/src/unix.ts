import type net from 'node:net'
import { checkUnixPathLength, formatAddress, type TransportAddress } from './address.js'
import { guardedAttempt } from './attempt.js'
import type { ResolvedConnectOptions, ResolvedListenOptions } from './options.js'
import { boundAddress, dialled } from './registry.js'
import { bindLifetimeSignal, listenUnixPath, openNetSocket } from './stream.js'

type UnixAddress = Extract<TransportAddress, { scheme: 'unix' }>

export async function connectUnix(
  address: UnixAddress,
  options: ResolvedConnectOptions,
): Promise<net.Socket> {
  const text = formatAddress(address)
  checkUnixPathLength(address.path, text)
  const socket = await guardedAttempt(text, options, (cancel) =>
    openNetSocket({ path: address.path, allowHalfOpen: options.allowHalfOpen }, cancel),
  )
  dialled.set(socket, address)
  bindLifetimeSignal(socket, options.signal, text)
  return socket
}

export async function listenUnix(address: UnixAddress, options: ResolvedListenOptions, server: net.Server) {
  const text = formatAddress(address)
  checkUnixPathLength(address.path, text)
  await listenUnixPath(server, address.path, options.backlog, text, options.signal)
  boundAddress.set(server, () => address)
  return server
}
