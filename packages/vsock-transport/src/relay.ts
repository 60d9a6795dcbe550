import type net from 'node:net'
import { loadAddon, systemErrorFor, type VsockAddon } from './native.js'

/** How a kernel relay ended. */
export interface KernelRelayResult {
  /** Bytes moved from socket `a` to socket `b`. */
  readonly aToB: number
  /** Bytes moved from socket `b` to socket `a`. */
  readonly bToA: number
  /** Set when a system call failed (not after `cancel()`): the errno as a Node system error. */
  readonly error?: NodeJS.ErrnoException
  /** The socket whose system call failed. */
  readonly side?: 'a' | 'b'
  /** True when `cancel()` ended the relay. */
  readonly cancelled: boolean
}

/** A running kernel relay between two sockets. */
export interface KernelRelay {
  /** Bytes moved so far each way, and ms since a byte last moved (for idle timeouts). */
  stats(): { aToB: number; bToA: number; idleMs: number }
  /**
   * Stops relaying now. The relay's own fds are closed before this returns, so the caller may
   * destroy the sockets at once; `onDone` follows with `cancelled: true`. Idempotent.
   */
  cancel(): void
}

/** Why `kernelRelay` cannot take a pair of sockets (it then returns this instead of a relay). */
export type KernelRelayUnavailable =
  | 'platform'
  | 'addon'
  | 'no-fd'
  | 'transformed'
  | 'not-connected'
  | 'buffered'
  | 'ended'
  | 'system'

interface RelayAddon extends VsockAddon {
  relay(
    fdA: number,
    fdB: number,
    done: (result: number, side: number, aToB: number, bToA: number) => void,
  ): RelayHandle | number
  relayStats(handle: RelayHandle): [number, number, number]
  relayCancel(handle: RelayHandle): number
}

type RelayHandle = object & { readonly __relayHandle: unique symbol }

interface StreamHandle {
  readonly fd?: number
  reading?: boolean
  readStop?(): number
}

const ECANCELED = 125

function relayAddon(): RelayAddon | undefined {
  try {
    const addon = loadAddon() as Partial<RelayAddon>
    return typeof addon.relay === 'function' ? (addon as RelayAddon) : undefined
  } catch {
    return undefined
  }
}

/** libuv's stream handle classes whose fd is the connection itself (vsock sockets use TCP). */
const PLAIN_HANDLES = new Set(['TCP', 'Pipe'])

/** The fd of a socket that has handed nothing to JavaScript yet and has nothing queued to write. */
function idleFd(socket: net.Socket): number | KernelRelayUnavailable {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle
  if (socket.destroyed || socket.connecting || !handle) return 'not-connected'
  // Only a plain libuv TCP or Unix stream carries the stream's bytes as they are on the fd; a TLS
  // socket (its handle is a TLSWrap) or any other wrapper transforms them, and relaying its fd
  // would forward ciphertext.
  if (!PLAIN_HANDLES.has(handle.constructor?.name ?? '')) return 'transformed'
  const fd = handle.fd
  if (typeof fd !== 'number' || fd < 0 || typeof handle.readStop !== 'function') return 'no-fd'
  if (socket.readableLength > 0 || socket.writableLength > 0) return 'buffered'
  if (socket.readableEnded || socket.writableEnded || socket.writableFinished) return 'ended'
  if ((socket as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended) return 'ended'
  return fd
}

/**
 * Relays two connected stream sockets (TCP, Unix, AF_VSOCK) in the kernel with splice(2), driven by
 * the event loop (uv_poll on dup()ed fds; no thread). Applies only on Linux with the addon loaded,
 * while neither socket has buffered data in JavaScript or has ended; otherwise returns the reason
 * and touches nothing, so the caller can relay through streams instead.
 *
 * On success the sockets' own reading stops and stays stopped: the caller must not read from or
 * write to them until `onDone`, then destroy them. Half-close is relayed (EOF on one side becomes
 * shutdown(SHUT_WR) on the other); `onDone` runs once when both directions ended, a system call
 * failed, or `cancel()` was called; memory stays bounded by one pipe per direction.
 */
export function kernelRelay(
  a: net.Socket,
  b: net.Socket,
  onDone: (result: KernelRelayResult) => void,
): KernelRelay | KernelRelayUnavailable {
  if (process.platform !== 'linux') return 'platform'
  const addon = relayAddon()
  if (!addon) return 'addon'
  const fdA = idleFd(a)
  if (typeof fdA !== 'number') return fdA
  const fdB = idleFd(b)
  if (typeof fdB !== 'number') return fdB
  const handle = addon.relay(fdA, fdB, (result, side, aToB, bToA) => {
    const cancelled = result === -ECANCELED
    onDone(
      result === 0 || cancelled
        ? { aToB, bToA, cancelled }
        : {
            aToB,
            bToA,
            cancelled,
            error: systemErrorFor(result, 'splice'),
            side: side === 0 ? 'a' : 'b',
          },
    )
  })
  // EMFILE and friends: nothing was started and the sockets are untouched.
  if (typeof handle === 'number') return 'system'
  stopReading(a)
  stopReading(b)
  return {
    stats: () => {
      const [aToB, bToA, idleMs] = addon.relayStats(handle)
      return { aToB, bToA, idleMs }
    },
    cancel: () => {
      addon.relayCancel(handle)
    },
  }
}

// libuv must not read an fd the relay owns now. net.Socket restarts reading (tryReadStart) only
// when `_handle.reading` is false, for instance from a read(0) the stream machinery schedules;
// leaving it true keeps every such path from stealing bytes out of the relay.
function stopReading(socket: net.Socket): void {
  const handle = (socket as unknown as { _handle: StreamHandle })._handle
  handle.readStop?.()
  handle.reading = true
}
