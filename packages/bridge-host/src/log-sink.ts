import type { Server, Socket } from 'node:net'
import type { Writable } from 'node:stream'
import type { Logger } from '@enclave/bridge-enclave'

/** Log connections open at once; more are refused (each may buffer one partial line). */
export const MAX_LOG_CONNECTIONS = 64

const EMPTY = Buffer.alloc(0)

export interface LogSinkStats {
  connections: number
  lines: number
  bytes: number
  truncatedLines: number
}

/**
 * Copies the enclave's log connections to `output`, whole lines only: each connection's bytes are
 * cut at LF and every line goes out in one `write`, so lines from concurrent connections never mix.
 * A line longer than `maxLineBytes` is cut there (the rest of it dropped, counted, and logged).
 * When `output` pushes back, every log connection pauses until it drains.
 */
export class LogSink {
  readonly #output: Writable
  readonly #maxLine: number
  readonly #log: Logger
  readonly #sockets = new Set<Socket>()
  #blocked = false
  readonly stats: LogSinkStats = { connections: 0, lines: 0, bytes: 0, truncatedLines: 0 }

  constructor(output: Writable, maxLineBytes: number, logger: Logger) {
    this.#output = output
    this.#maxLine = maxLineBytes
    this.#log = logger
  }

  get active(): number {
    return this.#sockets.size
  }

  #emit(line: Buffer): void {
    this.stats.lines++
    this.stats.bytes += line.length + 1
    // One write per line (line + LF): the unit that must never be split.
    const ok = this.#output.write(Buffer.concat([line, Buffer.from('\n')]))
    if (!ok && !this.#blocked) {
      this.#blocked = true
      for (const s of this.#sockets) s.pause()
      this.#output.once('drain', () => {
        this.#blocked = false
        for (const s of this.#sockets) s.resume()
      })
    }
  }

  /** Takes one log connection. */
  accept = (socket: Socket): void => {
    // Each connection may hold a partial line of up to maxLineBytes: bound how many there are.
    if (this.#sockets.size >= MAX_LOG_CONNECTIONS) {
      this.#log.warn({ limit: MAX_LOG_CONNECTIONS }, 'log connection refused: too many open')
      socket.destroy()
      return
    }
    this.#sockets.add(socket)
    this.stats.connections++
    // The partial line is copied into one growing buffer (doubling, at most maxLineBytes), so a
    // peer dripping a long line costs linear copying, and the socket's chunks are never retained.
    let partial = EMPTY
    let partialLength = 0
    // True while the rest of an over-long line is being skipped.
    let skipping = false
    const append = (piece: Buffer): void => {
      if (partialLength + piece.length > partial.length) {
        const size = Math.min(this.#maxLine, Math.max(256, partial.length * 2, partialLength + piece.length))
        const next = Buffer.allocUnsafe(size)
        partial.copy(next, 0, 0, partialLength)
        partial = next
      }
      piece.copy(partial, partialLength)
      partialLength += piece.length
    }
    // #emit copies the line out, so the buffer is reused; a big one is dropped to free memory.
    const emitWith = (tail: Buffer): void => {
      if (partialLength === 0) this.#emit(tail)
      else {
        append(tail)
        this.#emit(partial.subarray(0, partialLength))
      }
      partialLength = 0
      if (partial.length > 16 * 1024) partial = EMPTY
    }
    socket.on('error', (err) => this.#log.debug({ err }, 'log connection error'))
    socket.on('data', (chunk: Buffer) => {
      let start = 0
      while (start < chunk.length) {
        const lf = chunk.indexOf(0x0a, start)
        const end = lf < 0 ? chunk.length : lf
        if (!skipping) {
          const room = this.#maxLine - partialLength
          const piece = chunk.subarray(start, start + Math.min(end - start, room))
          if (end - start > room) {
            emitWith(piece)
            this.stats.truncatedLines++
            this.#log.warn({ maxLineBytes: this.#maxLine }, 'enclave log line over the limit was cut')
            skipping = true
          } else if (lf >= 0) {
            emitWith(piece)
          } else if (piece.length > 0) {
            append(piece)
          }
        }
        if (lf >= 0) skipping = false
        start = lf < 0 ? chunk.length : lf + 1
      }
    })
    let flushed = false
    const finish = (): void => {
      if (flushed) return
      flushed = true
      this.#sockets.delete(socket)
      // A last line without LF still goes out whole.
      if (partialLength > 0 && !skipping) emitWith(EMPTY)
    }
    socket.once('end', () => {
      finish()
      socket.end()
    })
    socket.once('close', finish)
    if (this.#blocked) socket.pause()
  }

  attach(server: Server): void {
    server.on('connection', this.accept)
  }

  /** Closes every log connection (flushing their partial lines). */
  closeAll(): void {
    for (const s of this.#sockets) s.destroy()
  }
}
