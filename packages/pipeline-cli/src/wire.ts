import type { Duplex } from 'node:stream'
import { FrameDecoder, isProtocolError } from '@enclave/protocol'
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
 * @enclave/protocol frame format). The first payload byte is the kind; the rest is the body.
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

export type Frame =
  | { kind: 'control'; message: Control }
  | { kind: 'data'; stream: DataStream; bytes: Buffer }

export interface ChannelLimits {
  /** Largest data chunk in bytes. */
  readonly maxChunk: number
  /** Largest control message (JSON) in bytes. */
  readonly maxControl: number
}

/**
 * One session's framed, bidirectional message stream over a (TLS) socket. Reading is pull-based
 * (`next()`), so an idle reader stops the socket and the peer feels TCP backpressure; `send*()`
 * resolve once the socket can take more, so a writer never buffers more than one chunk.
 */
export class Channel {
  readonly #socket: Duplex
  readonly #limits: ChannelLimits
  readonly #decoder: FrameDecoder
  readonly #iterator: AsyncIterator<Buffer>
  #pending: Buffer[] = []
  #ended = false
  #closeError: PipelineError | undefined

  constructor(socket: Duplex, limits: ChannelLimits) {
    this.#socket = socket
    this.#limits = limits
    this.#decoder = new FrameDecoder({ maxFrameLength: Math.max(limits.maxChunk, limits.maxControl) + 1 })
    this.#iterator = socket[Symbol.asyncIterator]()
    socket.on('error', (error: Error) => {
      this.#closeError ??= new ConnectionLostError(`the connection failed: ${error.message}`, {
        cause: error,
      })
    })
  }

  get socket(): Duplex {
    return this.#socket
  }

  /** The next frame, or undefined at a clean end of stream between frames. */
  async next(): Promise<Frame | undefined> {
    for (;;) {
      const payload = this.#pending.shift()
      if (payload) return this.#parse(payload)
      if (this.#ended) return undefined
      let result: IteratorResult<Buffer>
      try {
        result = await this.#iterator.next()
      } catch (error) {
        throw (
          this.#closeError ?? new ConnectionLostError(`the connection failed: ${(error as Error).message}`)
        )
      }
      try {
        if (result.done) {
          this.#ended = true
          this.#decoder.end()
        } else {
          // Payloads are views into this chunk; socket chunks are never reused, so no copy is needed.
          this.#pending = this.#decoder.push(result.value)
        }
      } catch (error) {
        if (isProtocolError(error)) {
          const tooLarge = error.code === 'ENCLAVE_PROTOCOL_FRAME_TOO_LARGE'
          if (tooLarge) throw new LimitExceededError(`the peer sent ${error.message}`, { cause: error })
          if (error.code === 'ENCLAVE_PROTOCOL_TRUNCATED') {
            throw new ConnectionLostError('the connection closed in the middle of a message', {
              cause: error,
            })
          }
          throw new ProtocolViolationError(`malformed frame: ${error.message}`, { cause: error })
        }
        throw error
      }
    }
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

  #parse(payload: Buffer): Frame {
    if (payload.length === 0) throw new ProtocolViolationError('empty frame (no kind byte)')
    const kind = payload[0]!
    const body = payload.subarray(1)
    if (kind === FRAME_CONTROL) {
      if (body.length > this.#limits.maxControl) {
        throw new LimitExceededError(
          `a control message of ${body.length} bytes is over the limit of ${this.#limits.maxControl}`,
        )
      }
      let message: unknown
      try {
        message = JSON.parse(body.toString('utf8'))
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
    if (body.length > this.#limits.maxChunk) {
      throw new LimitExceededError(
        `a data chunk of ${body.length} bytes is over the limit of ${this.#limits.maxChunk}`,
      )
    }
    return { kind: 'data', stream, bytes: body }
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

  #write(kind: number, body: Uint8Array): Promise<void> {
    const socket = this.#socket
    if (socket.destroyed || socket.writableEnded) {
      return Promise.reject(this.#closeError ?? new ConnectionLostError('the connection is closed'))
    }
    const header = Buffer.allocUnsafe(5)
    header.writeUInt32BE(body.length + 1, 0)
    header[4] = kind
    socket.cork()
    socket.write(header)
    const ok = socket.write(body)
    socket.uncork()
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
