import type { Socket } from 'node:net'

/**
 * The log channel (vsock 17001): the app's stdout and stderr, split into whole lines, kept in a
 * ring buffer (128 KiB, oldest lines evicted first), replayed to each new reader and then streamed
 * live. The app's pipes are always drained, whatever the readers do: a slow reader gets its own
 * bounded backlog, and when that is full its oldest lines are dropped (with a marker line), so a
 * slow or absent reader never blocks the app and never grows memory without bound.
 */
export interface LogRing {
  /** Appends complete lines (each ending in 0x0A). */
  appendLines(lines: readonly Buffer[]): void
  /** A line assembler for one source (stdout, stderr, a service); `prefix` is put before each line. */
  source(prefix?: string): LineAssembler
  /** Streams the ring and then live lines to `socket` until it closes. */
  attach(socket: Socket): void
  /** The ring's current content (tests, `logs` commands). */
  snapshot(): Buffer
  /** Bytes currently held in the ring. */
  readonly size: number
  /** Readers attached now. */
  readonly readers: number
  /** Ends every reader (after flushing what it can take without blocking). */
  close(): void
}

export interface LogRingOptions {
  /** Ring size in bytes. @default 131072 (enclaver's 128 KiB) */
  readonly capacity?: number
  /** Longest line; longer ones are split. @default 4096 (what enclaver's host splits at) */
  readonly maxLineLength?: number
  /** Per-reader backlog before its oldest lines are dropped. @default capacity */
  readonly readerBacklog?: number
  /** Called with every line appended (e.g. to tee into odyn's console). */
  readonly onLine?: (line: Buffer) => void
}

export interface LineAssembler {
  push(chunk: Buffer): void
  /** Flushes a partial last line (a newline is added). */
  end(): void
}

const LF = 0x0a

export function createLogRing(options: LogRingOptions = {}): LogRing {
  const capacity = options.capacity ?? 128 * 1024
  const maxLine = options.maxLineLength ?? 4096
  const backlogLimit = options.readerBacklog ?? capacity
  const ring: Buffer[] = []
  let head = 0 // index of the oldest live line in `ring` (compacted lazily)
  let size = 0
  const readers = new Set<Reader>()

  class Reader {
    readonly pending: Buffer[] = []
    pendingBytes = 0
    dropped = 0
    readonly onDrain = () => this.flush()
    constructor(readonly socket: Socket) {}

    offer(line: Buffer): void {
      if (this.pending.length === 0 && !this.socket.writableNeedDrain) {
        this.socket.write(line)
        return
      }
      this.pending.push(line)
      this.pendingBytes += line.length
      while (this.pendingBytes > backlogLimit && this.pending.length > 0) {
        const old = this.pending.shift()!
        this.pendingBytes -= old.length
        this.dropped += old.length
      }
    }

    flush(): void {
      if (this.dropped > 0 && !this.socket.destroyed) {
        this.socket.write(`[odyn] ${this.dropped} bytes of log dropped: this reader was too slow\n`)
        this.dropped = 0
      }
      // Write until the socket asks for a drain: its 'drain' event calls flush again.
      while (this.pending.length > 0 && !this.socket.writableNeedDrain) {
        const line = this.pending.shift()!
        this.pendingBytes -= line.length
        this.socket.write(line)
      }
    }
  }

  const appendLines = (lines: readonly Buffer[]): void => {
    for (const line of lines) {
      ring.push(line)
      size += line.length
      while (size > capacity && head < ring.length) {
        size -= ring[head]!.length
        ring[head] = EMPTY
        head++
      }
      if (head > 1024 && head * 2 > ring.length) {
        ring.splice(0, head)
        head = 0
      }
      options.onLine?.(line)
      for (const reader of readers) reader.offer(line)
    }
  }

  const source = (prefix = ''): LineAssembler => {
    const pre = Buffer.from(prefix, 'utf8')
    let partial: Buffer[] = []
    let partialBytes = 0
    const emit = (body: Buffer, lines: Buffer[]) => {
      lines.push(Buffer.concat([pre, ...partial, body, NEWLINE]))
      partial = []
      partialBytes = 0
    }
    return {
      push(chunk) {
        const lines: Buffer[] = []
        let start = 0
        for (;;) {
          const lf = chunk.indexOf(LF, start)
          const end = lf === -1 ? chunk.length : lf
          // Split over-long lines so that every line is bounded.
          while (partialBytes + (end - start) > maxLine) {
            const take = maxLine - partialBytes
            emit(chunk.subarray(start, start + take), lines)
            start += take
          }
          if (lf === -1) {
            if (start < chunk.length) {
              partial.push(Buffer.from(chunk.subarray(start)))
              partialBytes += chunk.length - start
            }
            break
          }
          emit(chunk.subarray(start, lf), lines)
          start = lf + 1
        }
        if (lines.length > 0) appendLines(lines)
      },
      end() {
        if (partialBytes > 0) {
          const lines: Buffer[] = []
          emit(EMPTY, lines)
          appendLines(lines)
        }
      },
    }
  }

  const snapshot = () => Buffer.concat(ring.slice(head))

  return {
    appendLines,
    source,
    attach(socket) {
      const reader = new Reader(socket)
      readers.add(reader)
      socket.on('drain', reader.onDrain)
      const detach = () => {
        readers.delete(reader)
        socket.off('drain', reader.onDrain)
      }
      socket.once('close', detach)
      socket.on('error', () => socket.destroy())
      // Readers send nothing; discard anything they do send so it cannot pile up.
      socket.on('data', () => {})
      for (const line of ring.slice(head)) reader.offer(line)
    },
    snapshot,
    get size() {
      return size
    },
    get readers() {
      return readers.size
    },
    close() {
      for (const reader of readers) {
        reader.flush()
        reader.socket.end()
      }
    },
  }
}

const EMPTY = Buffer.alloc(0)
const NEWLINE = Buffer.from('\n')
