import net from 'node:net'
import { formatAddress, type TransportAddress, VMADDR_PORT_ANY } from './address.js'
import { guardedAttempt } from './attempt.js'
import { checkDialable, vsockAddressInfo } from './dev.js'
import { AbortError, listenErrorFrom, SystemError } from './errors.js'
import {
  errnoName,
  loadAddon,
  systemErrorFor,
  unavailableFor,
  type VsockAddon,
  type WaitHandle,
} from './native.js'
import type { ResolvedConnectOptions, ResolvedListenOptions } from './options.js'
import { boundAddress, dialled, vsockSockets } from './registry.js'
import { bindLifetimeSignal, listenServer } from './stream.js'
import { serverHandle, socketHandle } from './tcp-wrap.js'

/**
 * Real AF_VSOCK. The addon creates, binds and connects the fd; the fd is then opened into a
 * tcp_wrap handle so all I/O runs on libuv's loop (no thread per connection).
 */
type VsockAddress = Extract<TransportAddress, { scheme: 'vsock' }>

const EINPROGRESS = 'EINPROGRESS'

function newSocketFd(addon: VsockAddon): number {
  const fd = addon.socket()
  if (fd >= 0) return fd
  throw (
    unavailableFor(fd) ??
    new SystemError(`socket(AF_VSOCK) failed: ${errnoName(fd)}`, {
      cause: systemErrorFor(fd, 'socket'),
      systemCode: errnoName(fd),
    })
  )
}

/**
 * Non-blocking connect; an in-progress one is waited for on the event loop (see README). Owns `fd`
 * until it settles; the timeout arrives through `cancel` (guardedAttempt).
 */
function connectFd(addon: VsockAddon, fd: number, address: VsockAddress, cancel: AbortSignal) {
  return new Promise<void>((resolve, reject) => {
    const started = addon.connect(fd, address.cid, address.port)
    if (started === 0) {
      resolve()
      return
    }
    if (errnoName(started) !== EINPROGRESS) {
      reject(systemErrorFor(started, 'connect'))
      return
    }
    const onAbort = () => addon.cancelWait(wait as WaitHandle)
    const wait = addon.waitConnected(fd, (result) => {
      // The poll is closed by now, so the caller may close the fd.
      cancel.removeEventListener('abort', onAbort)
      if (cancel.aborted) reject(cancel.reason)
      else if (result === 0) resolve()
      else reject(systemErrorFor(result, 'connect'))
    })
    if (typeof wait === 'number') {
      reject(systemErrorFor(wait, 'uv_poll_init'))
      return
    }
    if (cancel.aborted) onAbort()
    else cancel.addEventListener('abort', onAbort, { once: true })
  })
}

export async function connectVsock(
  address: VsockAddress,
  options: ResolvedConnectOptions,
): Promise<net.Socket> {
  const text = formatAddress(address)
  checkDialable(address, text)
  const addon = loadAddon()
  const socket = await guardedAttempt(text, options, async (cancel) => {
    const fd = newSocketFd(addon)
    let owned = true
    try {
      // The kernel's own connect timeout (2 s by default) would cut a longer timeoutMs short.
      if (options.timeoutMs !== undefined) addon.setConnectTimeout(fd, options.timeoutMs)
      await connectFd(addon, fd, address, cancel)
      if (cancel.aborted) throw cancel.reason
      const handle = socketHandle(fd)
      if (typeof handle === 'number') throw systemErrorFor(handle, 'uv_tcp_open')
      owned = false
      return new net.Socket({
        handle,
        readable: true,
        writable: true,
        allowHalfOpen: options.allowHalfOpen,
      } as net.SocketConstructorOpts)
    } finally {
      if (owned) addon.close(fd)
    }
  })
  vsockSockets.add(socket)
  dialled.set(socket, address)
  bindLifetimeSignal(socket, options.signal, text)
  return socket
}

export async function listenVsock(
  address: VsockAddress,
  options: ResolvedListenOptions,
  server: net.Server,
): Promise<net.Server> {
  const text = formatAddress(address)
  const addon = loadAddon()
  if (options.signal?.aborted) {
    throw new AbortError(`listen on ${text} was aborted`, { cause: options.signal.reason, address: text })
  }
  const fd = newSocketFd(addon)
  let handle: ReturnType<typeof serverHandle> | undefined
  try {
    const port = address.port === 0 ? VMADDR_PORT_ANY : address.port
    let result = addon.bind(fd, address.cid, port)
    if (result < 0) throw listenErrorFrom(systemErrorFor(result, 'bind'), text)
    result = addon.listen(fd, options.backlog)
    if (result < 0) throw listenErrorFrom(systemErrorFor(result, 'listen'), text)
    handle = serverHandle(fd)
    if (typeof handle === 'number') throw listenErrorFrom(systemErrorFor(handle, 'uv_tcp_open'), text)
  } catch (err) {
    addon.close(fd)
    throw err
  }
  // From here the handle owns the fd: server.close() (also on a failed listen) closes it.
  server.prependListener('connection', (socket: net.Socket) => vsockSockets.add(socket))
  await listenServer(server, { handle, backlog: options.backlog }, text, options.signal)
  const name = addon.getsockname(fd)
  const [cid, port] = typeof name === 'number' ? [address.cid, address.port] : name
  boundAddress.set(server, () => ({ scheme: 'vsock', cid, port }))
  server.address = () => (server.listening ? vsockAddressInfo(cid, port) : null)
  return server
}

/** Peer [cid, port] of an AF_VSOCK socket, from getpeername. */
export function vsockPeer(socket: net.Socket): TransportAddress | undefined {
  const fd = fdOf(socket)
  if (fd === undefined) return undefined
  const peer = loadAddon().getpeername(fd)
  if (typeof peer === 'number') return undefined
  return { scheme: 'vsock', cid: peer[0], port: peer[1] }
}

/** The kernel fd behind a net.Socket (its libuv handle's), or undefined once closed. */
export function fdOf(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}
