import { mkdirSync } from 'node:fs'
import type net from 'node:net'
import { join } from 'node:path'
import {
  checkUnixPathLength,
  formatAddress,
  type TransportAddress,
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_CID_PARENT,
  VMADDR_PORT_ANY,
} from './address.js'
import { guardedAttempt } from './attempt.js'
import { listenPortPath } from './ephemeral.js'
import { InvalidAddressError, listenErrorFrom } from './errors.js'
import type { ResolvedConnectOptions, ResolvedDevMode, ResolvedListenOptions } from './options.js'
import { boundAddress, dialled } from './registry.js'
import { bindLifetimeSignal, openNetSocket } from './stream.js'

/**
 * Dev mode: vsock emulated with Unix sockets, `vsock://C:P` = `<dir>/<C>_<P>.sock`. CID 2 (host)
 * means 3 (the parent), so enclave code that dials the host reaches the parent unchanged.
 */
type VsockAddress = Extract<TransportAddress, { scheme: 'vsock' }>

/** The Unix socket path that emulates `vsock://cid:port`. */
export function devSocketPath(dev: ResolvedDevMode, cid: number, port: number): string {
  return join(dev.dir, `${cid === VMADDR_CID_HOST ? VMADDR_CID_PARENT : cid}_${port}.sock`)
}

/** Address info a dev-mode or real vsock server reports from server.address(). */
export interface VsockAddressInfo extends net.AddressInfo {
  family: 'vsock'
  cid: number
}

export function vsockAddressInfo(cid: number, port: number): VsockAddressInfo {
  return { address: String(cid), family: 'vsock', port, cid }
}

export function checkDialable(address: VsockAddress, text: string): void {
  if (address.cid === VMADDR_CID_ANY) {
    throw new InvalidAddressError(`cannot connect to ${text}: CID "any" is only for listening; name a CID`, {
      address: text,
    })
  }
  if (address.port === VMADDR_PORT_ANY) {
    throw new InvalidAddressError(`cannot connect to ${text}: port 4294967295 means "any port"`, {
      address: text,
    })
  }
}

export async function connectDev(
  address: VsockAddress,
  options: ResolvedConnectOptions,
  dev: ResolvedDevMode,
): Promise<net.Socket> {
  const text = formatAddress(address)
  checkDialable(address, text)
  const path = devSocketPath(dev, address.cid, address.port)
  checkUnixPathLength(path, text)
  const socket = await guardedAttempt(
    text,
    options,
    (cancel) => openNetSocket({ path, allowHalfOpen: options.allowHalfOpen }, cancel),
    `dev mode: ${path}`,
  )
  dialled.set(socket, address)
  bindLifetimeSignal(socket, options.signal, text)
  return socket
}

export async function listenDev(
  address: VsockAddress,
  options: ResolvedListenOptions,
  dev: ResolvedDevMode,
  server: net.Server,
): Promise<net.Server> {
  const text = formatAddress(address)
  const rawCid = address.cid === VMADDR_CID_ANY ? dev.cid : address.cid
  const cid = rawCid === VMADDR_CID_HOST ? VMADDR_CID_PARENT : rawCid
  checkUnixPathLength(devSocketPath(dev, cid, 4294967295), text)
  try {
    mkdirSync(dev.dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    throw listenErrorFrom(err, text, `dev mode: cannot create ${dev.dir}`)
  }
  const port = await listenPortPath(
    server,
    address.port,
    (p) => devSocketPath(dev, cid, p),
    (p) => formatAddress({ scheme: 'vsock', cid: address.cid, port: p }),
    options.backlog,
    options.signal,
  )
  boundAddress.set(server, () => ({ scheme: 'vsock', cid, port }))
  server.address = () => vsockAddressInfo(cid, port)
  return server
}
