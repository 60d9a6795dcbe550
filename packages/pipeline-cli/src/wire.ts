import type { Duplex } from 'node:stream'
import {
  ConnectionLostError,
  errorFromWire,
  isPipelineError,
  LimitExceededError,
  type PipelineError,
  ProtocolViolationError,
} from './errors.js'

/**
 * Frames on the TLS stream: u32 big-endian length, then that many payload bytes (the
 * @enclave/protocol frame format, decoded here so that data is never copied). The first payload
 * byte is the kind; the rest is the body.
 */
export const FRAME_CONTROL = 0
export const FRAME_STDIN = 1
export const FRAME_STDOUT = 2
export const FRAME_STDERR = 3
export const FRAME_FILE = 4

export type DataStream = 'stdin' | 'stdout' | 'stderr' | 'file'
const STREAM_KIND: Record<DataStream, number> = {
  stdin: FRAME_STDIN,
  stdout: FRAME_STDOUT,
  stderr: FRAME_STDERR,
  file: FRAME_FILE,
}
const KIND_STREAM: Record<number, DataStream> = {
  [FRAME_STDIN]: 'stdin',
  [FRAME_STDOUT]: 'stdout',
  [FRAME_STDERR]: 'stderr',
  [FRAME_FILE]: 'file',
}

/** A control message: a JSON object with a string `type`; the other fields depend on the type. */
export interface Control {
  readonly type: string
  readonly [field: string]: unknown
}

/**
 * A data frame's body arrives as views into the socket's chunks (`pieces`, no copy); `bytes` joins
 * them on first use. File transfers write the pieces as they are (one writev), so a 256 KiB frame
 * spread over sixteen 16 KiB TLS records is never copied on the main thread.
 */
export interface DataFrame {
  readonly kind: 'data'
  readonly stream: DataStream
  readonly pieces: readonly Buffer[]
  readonly length: number
  readonly bytes: Buffer
}

export type Frame = { kind: 'control'; message: Control } | DataFrame

class PieceFrame implements DataFrame {
  readonly kind = 'data'
  readonly stream: DataStream
  readonly pieces: readonly Buffer[]
  readonly length: number
  #joined: Buffer | undefined

  constructor(stream: DataStream, pieces: Buffer[], length: number) {
    this.stream = stream
    this.pieces = pieces
    this.length = length
  }

  get bytes(): Buffer {
    this.#joined ??= this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.length)
    return this.#joined
  }
}

/** A frame cut from the input: its kind byte and its body as views. */
interface RawFrame {
  kind: number
  body: Buffer[]
  length: number
}

export interface ChannelLimits {
  /** Largest data chunk in bytes. */
  readonly maxChunk: number
  /** Largest control message (JSON) in bytes. */
  readonly maxControl: number
}

/**
 * One session's framed, bidirectional message stream over a (TLS) socket. Reading is pull-based
 * (`next()`): the socket is paused whenever a complete frame waits to be read, so an idle reader
 * stops it and the peer feels TCP backpressure. `send*()` resolve once the socket can take more,
 * so a writer never buffers more than the TLS socket's high-water mark (1 MiB, see tls.ts) plus
 * the one write that crossed it.
 *
 * Input arrives through 'data' events, one socket chunk at a time. (A stream's async iterator
 * would hand over everything buffered joined into one new buffer: a copy of most of the data.)
 */
export class Channel {
  readonly #socket: Duplex
  readonly #limits: ChannelLimits
  readonly #maxFrame: number
  /** Resolves the pending next() call when frames, the end or an error arrive. */
  #wake: (() => void) | undefined
  /** Unparsed input, as received (the first one possibly cut at the front). */
  #input: Buffer[] = []
  #buffered = 0
  /** Complete frames not yet returned; a decode error waits behind them. */
  #pending: RawFrame[] = []
  #decodeError: PipelineError | undefined
  #ended = false
  #closeError: PipelineError | undefined

  constructor(socket: Duplex, limits: ChannelLimits) {
    this.#socket = socket
    this.#limits = limits
    this.#maxFrame = Math.max(limits.maxChunk, limits.maxControl) + 1
    socket.on('error', (error: Error) => {
      this.#closeError ??= new ConnectionLostError(`the connection failed: ${error.message}`, {
        cause: error,
      })
      this.#wakeReader()
    })
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.once('end', () => {
      this.#ended = true
      this.#wakeReader()
    })
    socket.once('close', () => {
      if (!this.#ended) this.#closeError ??= new ConnectionLostError('the connection closed')
      this.#wakeReader()
    })
    // Attaching 'data' starts the flow; it waits for the first next() instead.
    socket.pause()
    if (socket.readableEnded) this.#ended = true
    else if (socket.destroyed) this.#closeError ??= new ConnectionLostError('the connection closed')
  }

  #onData(chunk: Buffer): void {
    if (chunk.length === 0) return
    // Socket chunks are never reused, so frames may keep views into them.
    this.#input.push(chunk)
    this.#buffered += chunk.length
    this.#cut()
    if (this.#pending.length > 0 || this.#decodeError) {
      this.#socket.pause()
      this.#wakeReader()
    }
  }

  #wakeReader(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  get socket(): Duplex {
    return this.#socket
  }

  /** The next frame, or undefined at a clean end of stream between frames. */
  async next(): Promise<Frame | undefined> {
    for (;;) {
      const raw = this.#pending.shift()
      if (raw) return this.#parse(raw)
      if (this.#decodeError) throw this.#decodeError
      if (this.#ended) {
        if (this.#buffered > 0) {
          throw new ConnectionLostError('the connection closed in the middle of a message')
        }
        return undefined
      }
      if (this.#closeError) throw this.#closeError
      await new Promise<void>((resolve) => {
        this.#wake = resolve
        this.#socket.resume()
      })
    }
  }

  /** Cuts every complete frame out of the input; a bad length prefix is kept as #decodeError. */
  #cut(): void {
    while (!this.#decodeError && this.#buffered >= 4) {
      const length = this.#peekLength()
      if (length === 0) {
        this.#decodeError = new ProtocolViolationError('empty frame (no kind byte)')
        return
      }
      // Refused on the prefix alone, so a hostile length never makes us buffer its payload.
      if (length > this.#maxFrame) {
        this.#decodeError = new LimitExceededError(
          `the peer sent a frame of ${length} bytes, over the limit of ${this.#maxFrame}`,
        )
        return
      }
      if (this.#buffered < 4 + length) return
      this.#take(4)
      const kind = this.#take(1)[0]![0]!
      this.#pending.push({ kind, body: this.#take(length - 1), length: length - 1 })
    }
  }

  #peekLength(): number {
    const first = this.#input[0]!
    if (first.length >= 4) return first.readUInt32BE(0)
    return Buffer.concat(this.#input, 4).readUInt32BE(0)
  }

  /** Removes `count` bytes from the front of the input, as views. */
  #take(count: number): Buffer[] {
    const out: Buffer[] = []
    this.#buffered -= count
    while (count > 0) {
      const first = this.#input[0]!
      if (first.length <= count) {
        out.push(first)
        this.#input.shift()
        count -= first.length
      } else {
        out.push(first.subarray(0, count))
        this.#input[0] = first.subarray(count)
        count = 0
      }
    }
    return out
  }

  /**
   * The next frame, which must be a control message; an `error` message from the peer is thrown as
   * its typed error, and end of stream becomes ConnectionLostError naming `expecting`.
   */
  async nextControl(expecting: string): Promise<Control> {
    const frame = await this.next()
    if (!frame) throw new ConnectionLostError(`the connection closed while waiting for ${expecting}`)
    if (frame.kind !== 'control') {
      throw new ProtocolViolationError(`expected ${expecting}, got a ${frame.stream} data frame`)
    }
    throwIfError(frame.message)
    return frame.message
  }

  #parse({ kind, body, length }: RawFrame): Frame {
    if (kind === FRAME_CONTROL) {
      if (length > this.#limits.maxControl) {
        throw new LimitExceededError(
          `a control message of ${length} bytes is over the limit of ${this.#limits.maxControl}`,
        )
      }
      let message: unknown
      try {
        message = JSON.parse(Buffer.concat(body, length).toString('utf8'))
      } catch (error) {
        throw new ProtocolViolationError('a control message is not valid JSON', { cause: error })
      }
      if (typeof message !== 'object' || message === null || Array.isArray(message)) {
        throw new ProtocolViolationError('a control message is not a JSON object')
      }
      if (typeof (message as Control).type !== 'string') {
        throw new ProtocolViolationError('a control message has no string "type"')
      }
      return { kind: 'control', message: message as Control }
    }
    const stream = KIND_STREAM[kind]
    if (!stream) throw new ProtocolViolationError(`unknown frame kind ${kind}`)
    if (length > this.#limits.maxChunk) {
      throw new LimitExceededError(
        `a data chunk of ${length} bytes is over the limit of ${this.#limits.maxChunk}`,
      )
    }
    return new PieceFrame(stream, body, length)
  }

  sendControl(message: Control): Promise<void> {
    const body = Buffer.from(JSON.stringify(message), 'utf8')
    if (body.length > this.#limits.maxControl) {
      return Promise.reject(
        new LimitExceededError(
          `a ${message.type} message of ${body.length} bytes is over ${this.#limits.maxControl}`,
        ),
      )
    }
    return this.#write(FRAME_CONTROL, body)
  }

  /** Sends data; chunks larger than maxChunk are split. */
  async sendData(stream: DataStream, bytes: Uint8Array): Promise<void> {
    for (let offset = 0; offset < bytes.length; offset += this.#limits.maxChunk) {
      await this.#write(STREAM_KIND[stream], bytes.subarray(offset, offset + this.#limits.maxChunk))
    }
  }

  /** Reports an error to the peer (best effort) and ends the stream. */
  async fail(error: PipelineError): Promise<void> {
    try {
      await this.sendControl({ type: 'error', code: error.code, message: error.message })
    } catch {
      // The peer may already be gone; the local caller has the error anyway.
    }
    this.end()
  }

  end(): void {
    if (!this.#socket.destroyed) this.#socket.end()
  }

  destroy(): void {
    this.#socket.destroy()
  }

  /**
   * Sends file data already laid out as frames by FileFrames: one buffer, so TLS encrypts it in
   * place (node copies a multi-buffer write into a fresh buffer first).
   */
  sendFrames(frames: FileFrames): Promise<void> {
    return this.#send(frames.wire)
  }

  #write(kind: number, body: Uint8Array): Promise<void> {
    const header = Buffer.allocUnsafe(5)
    header.writeUInt32BE(body.length + 1, 0)
    header[4] = kind
    return this.#send(header, body)
  }

  #send(first: Uint8Array, second?: Uint8Array): Promise<void> {
    const socket = this.#socket
    if (socket.destroyed || socket.writableEnded) {
      return Promise.reject(this.#closeError ?? new ConnectionLostError('the connection is closed'))
    }
    let ok: boolean
    if (second) {
      socket.cork()
      socket.write(first)
      ok = socket.write(second)
      socket.uncork()
    } else ok = socket.write(first)
    if (ok) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        socket.off('drain', onDrain)
        socket.off('close', onClose)
        if (error) reject(error)
        else resolve()
      }
      const onDrain = () => done()
      const onClose = () =>
        done(this.#closeError ?? new ConnectionLostError('the connection closed while sending'))
      socket.on('drain', onDrain)
      socket.on('close', onClose)
    })
  }
}

/**
 * One buffer holding up to `count` file frames of `chunk` body bytes each, with the headers'
 * room left between the bodies, so a file can be read straight into frame layout (one readv) and
 * sent as one write.
 */
export class FileFrames {
  readonly #buffer: Buffer
  readonly #chunk: number
  /** Where the file's bytes go: one view per frame body. */
  readonly bodies: Buffer[]
  /** After fill(): the frames to send. */
  wire: Buffer = Buffer.alloc(0)

  constructor(chunk: number, count: number) {
    this.#chunk = chunk
    this.#buffer = Buffer.allocUnsafe(count * (5 + chunk))
    this.bodies = Array.from({ length: count }, (_, index) =>
      this.#buffer.subarray(index * (5 + chunk) + 5, (index + 1) * (5 + chunk)),
    )
  }

  /** Writes the headers for `length` body bytes (filled in order) and returns the bodies used. */
  fill(length: number): Buffer[] {
    const used: Buffer[] = []
    let left = length
    let end = 0
    for (let index = 0; left > 0; index++) {
      const size = Math.min(this.#chunk, left)
      const start = index * (5 + this.#chunk)
      this.#buffer.writeUInt32BE(size + 1, start)
      this.#buffer[start + 4] = FRAME_FILE
      used.push(this.bodies[index]!.subarray(0, size))
      left -= size
      end = start + 5 + size
    }
    this.wire = this.#buffer.subarray(0, end)
    return used
  }
}

/** Throws the typed error carried by an `error` control message. */
export function throwIfError(message: Control): void {
  if (message.type !== 'error') return
  const code = typeof message.code === 'string' ? message.code : 'ENCLAVE_PIPELINE_PROTOCOL_VIOLATION'
  const text =
    typeof message.message === 'string' ? message.message.slice(0, 4096) : 'the peer reported an error'
  throw errorFromWire(code, text)
}

/** Field readers that turn a wrong type into a ProtocolViolationError naming the field. */
export const field = {
  string(message: Control, name: string, optional = false): string | undefined {
    const value = message[name]
    if (value === undefined && optional) return undefined
    if (typeof value !== 'string')
      throw new ProtocolViolationError(`${message.type}.${name} must be a string`)
    return value
  },
  integer(message: Control, name: string, min: number, max: number, optional = false): number | undefined {
    const value = message[name]
    if (value === undefined && optional) return undefined
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new ProtocolViolationError(`${message.type}.${name} must be an integer in ${min}..${max}`)
    }
    return value
  },
  boolean(message: Control, name: string): boolean {
    const value = message[name]
    if (value === undefined) return false
    if (typeof value !== 'boolean')
      throw new ProtocolViolationError(`${message.type}.${name} must be a boolean`)
    return value
  },
  stringArray(message: Control, name: string, maxItems: number): string[] | undefined {
    const value = message[name]
    if (value === undefined) return undefined
    if (
      !Array.isArray(value) ||
      value.length > maxItems ||
      !value.every((item) => typeof item === 'string')
    ) {
      throw new ProtocolViolationError(
        `${message.type}.${name} must be an array of at most ${maxItems} strings`,
      )
    }
    return value as string[]
  },
}

export function asPipelineError(error: unknown, fallback: (message: string) => PipelineError): PipelineError {
  if (isPipelineError(error)) return error
  return fallback((error as Error | undefined)?.message ?? String(error))
}
