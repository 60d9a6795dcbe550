import type { Socket } from 'node:net'
import {
  decodeHeartbeat as decodeRecord,
  encodeHeartbeat as encodeRecord,
  HEARTBEAT_LENGTH,
  isProtocolError,
} from '@enclave/protocol'
import { ReadFailure, type SocketReader } from './reader.js'
import { uuidToBytes } from './settings.js'

/** One heartbeat: the 16 raw bytes of the enclave id, then LF, read as a fixed 17-byte record. */
export const HEARTBEAT_RECORD_BYTES = HEARTBEAT_LENGTH

/** The 17-byte record of an enclave id (any UUID text form the settings accept). */
export function encodeHeartbeat(enclaveId: string): Buffer {
  return encodeRecord(uuidToBytes(enclaveId))
}

/**
 * The id a record carries, or undefined when its 17th byte is not LF. Reading fixed-size records
 * (not "up to LF") keeps ids whose bytes contain 0x0A working, which Go's line reader does not.
 */
export function decodeHeartbeat(record: Uint8Array): string | undefined {
  if (record.length !== HEARTBEAT_RECORD_BYTES) return undefined
  try {
    return decodeRecord(record)?.value
  } catch (err) {
    if (isProtocolError(err)) return undefined
    throw err
  }
}

export interface HeartbeatChannelHandlers {
  /** A record with the right id arrived. */
  onBeat(): void
  /** A record with another id (or a malformed one) arrived; the channel is closed. */
  onMismatch(received: string): void
  /** The connection ended (either side); the channel is closed. */
  onClose(err?: Error): void
}

/**
 * Runs heartbeats on one connection: sends our record now and every interval/2, reads the peer's
 * fixed-size records. Returns a stop function (idempotent) that destroys the socket.
 */
export function runHeartbeatChannel(
  socket: Socket,
  reader: SocketReader,
  { enclaveId, intervalMs }: { enclaveId: string; intervalMs: number },
  handlers: HeartbeatChannelHandlers,
): () => void {
  const record = encodeHeartbeat(enclaveId)
  let stopped = false
  const send = (): void => {
    // A peer that stops reading must not make us queue heartbeats without bound.
    if (socket.writableLength < 64 * HEARTBEAT_RECORD_BYTES) socket.write(record)
  }
  const ticker = setInterval(send, Math.max(1, Math.floor(intervalMs / 2)))
  const stop = (err?: Error): void => {
    if (stopped) return
    stopped = true
    clearInterval(ticker)
    socket.destroy()
    handlers.onClose(err)
  }
  socket.on('error', () => {})
  send()
  void (async () => {
    const abort = new AbortController()
    socket.once('close', () => abort.abort())
    try {
      while (!stopped) {
        const bytes = await reader.readExact(HEARTBEAT_RECORD_BYTES, {
          signal: abort.signal,
          what: 'a heartbeat',
        })
        const id = decodeHeartbeat(bytes)
        if (id === enclaveId) {
          handlers.onBeat()
          continue
        }
        const received = id ?? `malformed record ${bytes.toString('hex')}`
        stopped = true
        clearInterval(ticker)
        socket.destroy()
        handlers.onMismatch(received)
        return
      }
    } catch (err) {
      stop(
        err instanceof ReadFailure && (err.reason === 'closed' || err.reason === 'aborted')
          ? undefined
          : (err as Error),
      )
    }
  })()
  return () => stop()
}
