import { lstatSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import { AbortError, listenErrorFrom, systemCodeOf } from './errors.js'

/**
 * Shared plumbing of the net-based transports (tcp, unix, dev-mode vsock, hybrid vsock):
 * one cancellable connect, one cancellable listen, and the lifetime signal of a socket.
 */

/** net.connect that settles once: connected, failed, or cancelled (the socket is destroyed then). */
export function openNetSocket(connectOptions: net.NetConnectOpts, cancel: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (cancel.aborted) {
      reject(cancel.reason)
      return
    }
    const socket = net.connect(connectOptions)
    const cleanup = () => {
      socket.off('connect', onConnect)
      socket.off('error', onError)
      cancel.removeEventListener('abort', onAbort)
    }
    const onConnect = () => {
      cleanup()
      resolve(socket)
    }
    const onError = (err: Error) => {
      cleanup()
      socket.destroy()
      reject(err)
    }
    const onAbort = () => {
      cleanup()
      socket.destroy()
      reject(cancel.reason)
    }
    socket.once('connect', onConnect)
    socket.once('error', onError)
    cancel.addEventListener('abort', onAbort, { once: true })
  })
}

/** Destroys the socket with an AbortError if `signal` fires while it is open (net.connect's semantics). */
export function bindLifetimeSignal(
  socket: net.Socket,
  signal: AbortSignal | undefined,
  address: string,
): void {
  if (!signal) return
  const onAbort = () => socket.destroy(new AbortError(`connection to ${address} was aborted`, { address }))
  signal.addEventListener('abort', onAbort, { once: true })
  socket.once('close', () => signal.removeEventListener('abort', onAbort))
}

/**
 * server.listen(...) as a promise that settles once, honouring an AbortSignal: aborted before
 * listening rejects with AbortError; aborted later closes the server.
 */
export function listenServer(
  server: net.Server,
  listenArgs: net.ListenOptions | { handle: object; backlog: number },
  address: string,
  signal: AbortSignal | undefined,
  detail = '',
): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortError(`listen on ${address} was aborted`, { cause: signal.reason, address }))
      return
    }
    const cleanup = () => {
      server.off('listening', onListening)
      server.off('error', onError)
      signal?.removeEventListener('abort', onAbortEarly)
    }
    const onListening = () => {
      cleanup()
      if (signal) {
        const onAbort = () => server.close()
        signal.addEventListener('abort', onAbort, { once: true })
        server.once('close', () => signal.removeEventListener('abort', onAbort))
      }
      resolve(server)
    }
    const onError = (err: Error) => {
      cleanup()
      server.close()
      reject(listenErrorFrom(err, address, detail))
    }
    const onAbortEarly = () => {
      cleanup()
      server.close()
      reject(new AbortError(`listen on ${address} was aborted`, { cause: signal?.reason, address }))
    }
    server.once('listening', onListening)
    server.once('error', onError)
    signal?.addEventListener('abort', onAbortEarly, { once: true })
    if ('handle' in listenArgs) server.listen(listenArgs.handle, listenArgs.backlog)
    else server.listen(listenArgs)
  })
}

/**
 * Removes a Unix socket file left behind by a dead process, so that listen can bind again.
 * Only a socket file that refuses connections is removed; a live listener is left alone.
 */
export async function removeStaleSocket(path: string): Promise<boolean> {
  try {
    if (!lstatSync(path).isSocket()) return false
  } catch {
    return false
  }
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path })
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', (err) => {
      probe.destroy()
      resolve(systemCodeOf(err) !== 'ECONNREFUSED')
    })
  })
  if (alive) return false
  try {
    unlinkSync(path)
    return true
  } catch {
    return false
  }
}

/** Listens on a Unix socket path; a stale socket file from a dead process is replaced. */
export async function listenUnixPath(
  server: net.Server,
  path: string,
  backlog: number,
  address: string,
  signal: AbortSignal | undefined,
): Promise<net.Server> {
  const detail = address === `unix://${path}` ? '' : path
  try {
    return await listenServer(server, { path, backlog }, address, signal, detail)
  } catch (err) {
    if ((err as { systemCode?: string }).systemCode !== 'EADDRINUSE' || !(await removeStaleSocket(path)))
      throw err
    return listenServer(server, { path, backlog }, address, signal, detail)
  }
}
