import type { Socket } from 'node:net'
import { type KernelRelay, kernelRelay } from '@enclave/vsock-transport'
import { IdleTimeoutError, SocketError, type TunnelError } from './errors.js'
import { type PipeOptions, resolvePipeOptions } from './options.js'

/** How one relayed pair ended. */
export interface PipeResult {
  /** Bytes read from the inbound socket and written to the outbound one. */
  readonly bytesIn: number
  /** Bytes read from the outbound socket and written to the inbound one. */
  readonly bytesOut: number
  /** Why the pair was cut, if it did not end with both sides closing cleanly. */
  readonly error?: TunnelError
}

/** A running relay between two sockets. */
export interface Pipe {
  /** Settles (never rejects) once both sockets are closed. */
  readonly done: Promise<PipeResult>
  /**
   * How the bytes move: `splice` in the kernel (Linux, both sockets with an fd and nothing
   * buffered), or `stream` through the sockets' JavaScript streams.
   */
  readonly engine: 'splice' | 'stream'
  /** Bytes moved so far, each way. */
  bytes(): { bytesIn: number; bytesOut: number }
  /** Cuts both sockets now; `error` is reported in the result. Idempotent. */
  destroy(error?: TunnelError): void
}

/**
 * Relays two connected sockets until both are closed, with backpressure in both directions,
 * half-close (an `end` from one peer becomes `end()` towards the other while the opposite
 * direction keeps flowing), an optional idle timeout, and every socket error handled: a failing
 * pair never throws into the process.
 *
 * Where it can (option `kernelRelay`, on by default), the bytes move in the kernel with splice(2)
 * on the event loop, never through JavaScript; each direction then buffers at most one pipe. Else
 * they move through the streams: a direction stops reading while the other side's write buffer
 * is above its high-water mark, so memory stays bounded by the two sockets' buffers.
 */
export function pipeConnection(inbound: Socket, outbound: Socket, options?: PipeOptions): Pipe {
  const { idleTimeoutMs, kernelRelay: useKernel } = resolvePipeOptions(options)
  // A half-closed relay needs both sockets to keep their write side after the peer's FIN.
  inbound.allowHalfOpen = true
  outbound.allowHalfOpen = true
  noDelay(inbound)
  noDelay(outbound)
  const moved = { bytesIn: 0, bytesOut: 0 }
  if (useKernel && relayable(inbound) && relayable(outbound)) {
    // Bytes a resolver or the stream machinery already read go first, through the streams; a
    // write the kernel takes at once leaves nothing buffered, and the kernel relay can start.
    moved.bytesIn = flushBuffered(inbound, outbound)
    moved.bytesOut = flushBuffered(outbound, inbound)
    const pipe = relayInKernel(inbound, outbound, idleTimeoutMs, moved)
    if (pipe) return pipe
  }
  return relayStreams(inbound, outbound, idleTimeoutMs, moved)
}

function relayable(socket: Socket): boolean {
  return !socket.destroyed && !socket.readableEnded && !socket.writableEnded
}

function flushBuffered(from: Socket, to: Socket): number {
  let count = 0
  while (from.readableLength > 0) {
    const chunk = from.read() as Buffer | null
    if (chunk === null) break
    count += chunk.length
    to.write(chunk)
  }
  return count
}

/** The kernel relay of vsock-transport, or undefined where it cannot take this pair. */
function relayInKernel(
  inbound: Socket,
  outbound: Socket,
  idleTimeoutMs: number,
  moved: { bytesIn: number; bytesOut: number },
): Pipe | undefined {
  let { bytesIn, bytesOut } = moved
  let error: TunnelError | undefined
  // Both sockets' 'close' and the relay's own end.
  let pending = 3
  let finished = false
  let idleTimer: NodeJS.Timeout | undefined
  let settle!: (result: PipeResult) => void
  const done = new Promise<PipeResult>((resolve) => {
    settle = resolve
  })
  const onEnd = (): void => {
    pending -= 1
    if (pending > 0) return
    inbound.off('close', onSocketClose)
    outbound.off('close', onSocketClose)
    // Error listeners stay: a late error on a destroyed socket must not become uncaught.
    settle(error ? { bytesIn, bytesOut, error } : { bytesIn, bytesOut })
  }
  const started = kernelRelay(inbound, outbound, (result) => {
    finished = true
    clearTimeout(idleTimer)
    bytesIn += result.aToB
    bytesOut += result.bToA
    if (result.error) {
      error ??= new SocketError(result.side === 'a' ? 'inbound' : 'outbound', { cause: result.error })
    }
    // Both directions ended (or failed): the sockets have nothing left to do.
    inbound.destroy()
    outbound.destroy()
    onEnd()
  })
  if (typeof started === 'string') return undefined
  const relay: KernelRelay = started
  const cut = (reason?: TunnelError): void => {
    if (reason) error ??= reason
    // The relay closes its own fds before cancel() returns; destroying the sockets closes theirs.
    relay.cancel()
    inbound.destroy()
    outbound.destroy()
  }
  // Only a destroy() from outside closes a socket during the relay: stop relaying with it.
  const onSocketClose = (): void => {
    cut()
    onEnd()
  }
  inbound.on('error', (cause: Error) => cut(new SocketError('inbound', { cause })))
  outbound.on('error', (cause: Error) => cut(new SocketError('outbound', { cause })))
  inbound.once('close', onSocketClose)
  outbound.once('close', onSocketClose)
  if (idleTimeoutMs > 0) {
    const checkIdle = (): void => {
      if (finished) return
      const { idleMs } = relay.stats()
      if (idleMs >= idleTimeoutMs) cut(new IdleTimeoutError(idleTimeoutMs))
      else idleTimer = setTimeout(checkIdle, idleTimeoutMs - idleMs).unref()
    }
    idleTimer = setTimeout(checkIdle, idleTimeoutMs).unref()
  }
  return {
    done,
    engine: 'splice',
    bytes: () => {
      if (finished) return { bytesIn, bytesOut }
      const { aToB, bToA } = relay.stats()
      return { bytesIn: bytesIn + aToB, bytesOut: bytesOut + bToA }
    },
    destroy: (reason) => {
      if (pending > 0) cut(reason)
    },
  }
}

/** The relay through the sockets' streams: works for every socket. */
function relayStreams(
  inbound: Socket,
  outbound: Socket,
  idleTimeoutMs: number,
  moved: { bytesIn: number; bytesOut: number },
): Pipe {
  let { bytesIn, bytesOut } = moved
  let error: TunnelError | undefined
  let open = 2
  let settle!: (result: PipeResult) => void
  const done = new Promise<PipeResult>((resolve) => {
    settle = resolve
  })
  const fail = (reason: TunnelError): void => {
    error ??= reason
    inbound.destroy()
    outbound.destroy()
  }

  // Hot path: one closure per direction, no allocation per chunk beyond what the socket hands us.
  // write() returns false only when the kernel did not take the whole chunk at once; only then
  // does reading pause, so a fast pair never pays for readStop/readStart.
  const onInboundData = (chunk: Buffer): void => {
    bytesIn += chunk.length
    if (!outbound.write(chunk)) inbound.pause()
  }
  const onOutboundData = (chunk: Buffer): void => {
    bytesOut += chunk.length
    if (!inbound.write(chunk)) outbound.pause()
  }
  const onInboundDrain = (): void => {
    outbound.resume()
  }
  const onOutboundDrain = (): void => {
    inbound.resume()
  }
  const onInboundEnd = (): void => {
    outbound.end()
  }
  const onOutboundEnd = (): void => {
    inbound.end()
  }
  const onInboundError = (cause: Error): void => fail(new SocketError('inbound', { cause }))
  const onOutboundError = (cause: Error): void => fail(new SocketError('outbound', { cause }))
  const onTimeout = (): void => fail(new IdleTimeoutError(idleTimeoutMs))
  const onInboundClose = (): void => {
    // Closed cleanly with the other side still able to send: nobody can receive that data now.
    if (!outbound.readableEnded) outbound.destroy()
    onClose()
  }
  const onOutboundClose = (): void => {
    if (!inbound.readableEnded) inbound.destroy()
    onClose()
  }
  const onClose = (): void => {
    open -= 1
    if (open > 0) return
    inbound.off('data', onInboundData)
    outbound.off('data', onOutboundData)
    inbound.off('drain', onInboundDrain)
    outbound.off('drain', onOutboundDrain)
    inbound.off('end', onInboundEnd)
    outbound.off('end', onOutboundEnd)
    inbound.off('timeout', onTimeout)
    outbound.off('timeout', onTimeout)
    // Error listeners stay: a late error on a destroyed socket must not become uncaught.
    settle(error ? { bytesIn, bytesOut, error } : { bytesIn, bytesOut })
  }

  inbound.on('error', onInboundError)
  outbound.on('error', onOutboundError)
  // A socket destroyed before the call may already have emitted 'close': count it as closed now.
  if (inbound.destroyed) onClose()
  else inbound.once('close', onInboundClose)
  if (outbound.destroyed) onClose()
  else outbound.once('close', onOutboundClose)
  if (open === 0) return settledPipe(done, bytesIn, bytesOut)
  if (inbound.destroyed || outbound.destroyed) {
    const cause = inbound.errored ?? outbound.errored
    fail(
      new SocketError(inbound.destroyed ? 'inbound' : 'outbound', {
        cause: cause ?? 'closed before relaying',
      }),
    )
    return settledPipe(done, bytesIn, bytesOut)
  }
  inbound.on('drain', onInboundDrain)
  outbound.on('drain', onOutboundDrain)
  inbound.once('end', onInboundEnd)
  outbound.once('end', onOutboundEnd)
  if (idleTimeoutMs > 0) {
    inbound.setTimeout(idleTimeoutMs)
    outbound.setTimeout(idleTimeoutMs)
    inbound.on('timeout', onTimeout)
    outbound.on('timeout', onTimeout)
  }
  inbound.on('data', onInboundData)
  outbound.on('data', onOutboundData)
  // A resolver may have paused the inbound socket while it read a header.
  inbound.resume()
  outbound.resume()
  // A peer that sent its header and FIN at once: its end was seen before the relay started.
  if (inbound.readableEnded) onInboundEnd()
  if (outbound.readableEnded) onOutboundEnd()

  return {
    done,
    engine: 'stream',
    bytes: () => ({ bytesIn, bytesOut }),
    destroy: (reason) => {
      if (open === 0) return
      if (reason) fail(reason)
      else {
        inbound.destroy()
        outbound.destroy()
      }
    },
  }
}

function settledPipe(done: Promise<PipeResult>, bytesIn: number, bytesOut: number): Pipe {
  return { done, engine: 'stream', bytes: () => ({ bytesIn, bytesOut }), destroy: () => {} }
}

// Small request/response messages must not wait for Nagle's algorithm. TCP only: on a vsock fd
// held in a TCP handle (remoteFamily undefined) the option is meaningless.
function noDelay(socket: Socket): void {
  if (socket.remoteFamily === 'IPv4' || socket.remoteFamily === 'IPv6') socket.setNoDelay(true)
}
