// enclaver's egress tunnel handshake on vsock 17002: a u16 little-endian length, then JSON.
// Request {"host","port"}; reply "Ok" or {"Err":{"os_code","message"}}. We add optional "code"
// (our stable error code) and "rule" to Err so the enclave can answer 403/502/504 precisely;
// enclaver's serde reader ignores unknown fields, so both halves interoperate with enclaver's.
import { type EgressErrorCode, MalformedMessageError } from './errors.js'

/** Longest handshake message accepted (a host name is at most 253 bytes). */
export const MAX_MESSAGE_BYTES = 4096

export interface TunnelRequest {
  readonly host: string
  readonly port: number
}

export interface TunnelFailure {
  readonly os_code: number
  readonly message: string
  readonly code?: EgressErrorCode
  readonly rule?: string
}

export type TunnelReply = 'Ok' | { readonly Err: TunnelFailure }

function encode(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8')
  if (json.length > MAX_MESSAGE_BYTES)
    throw new MalformedMessageError(`message of ${json.length} bytes exceeds ${MAX_MESSAGE_BYTES}`)
  const out = Buffer.allocUnsafe(2 + json.length)
  out.writeUInt16LE(json.length, 0)
  json.copy(out, 2)
  return out
}

export function encodeRequest(request: TunnelRequest): Buffer {
  return encode({ host: request.host, port: request.port })
}

export function encodeReply(reply: TunnelReply): Buffer {
  return encode(reply)
}

/** Incremental decoder of one handshake message; bytes after it stay in `rest`. */
export class MessageDecoder {
  private buffered: Buffer = Buffer.alloc(0)

  /** Returns the parsed JSON and the bytes after it once complete; throws on a malformed message. */
  push(chunk: Buffer): { value: unknown; rest: Buffer } | undefined {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    if (this.buffered.length < 2) return undefined
    const length = this.buffered.readUInt16LE(0)
    if (length > MAX_MESSAGE_BYTES)
      throw new MalformedMessageError(`length ${length} exceeds ${MAX_MESSAGE_BYTES}`)
    if (this.buffered.length < 2 + length) return undefined
    const body = this.buffered.subarray(2, 2 + length)
    const rest = this.buffered.subarray(2 + length)
    let value: unknown
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body))
    } catch {
      throw new MalformedMessageError('body is not UTF-8 JSON')
    }
    return { value, rest: Buffer.from(rest) }
  }
}

export function parseRequest(value: unknown): TunnelRequest {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new MalformedMessageError('request is not an object')
  const { host, port } = value as Record<string, unknown>
  if (typeof host !== 'string' || host.length === 0 || host.length > 300)
    throw new MalformedMessageError('host must be a non-empty string')
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new MalformedMessageError('port must be an integer from 1 to 65535')
  }
  return { host, port }
}

export function parseReply(value: unknown): TunnelReply {
  if (value === 'Ok') return 'Ok'
  if (value !== null && typeof value === 'object' && 'Err' in value) {
    const err = (value as { Err: unknown }).Err
    if (err !== null && typeof err === 'object') {
      const { os_code, message, code, rule } = err as Record<string, unknown>
      return {
        Err: {
          os_code: typeof os_code === 'number' ? os_code : 0,
          message: typeof message === 'string' ? message : 'unknown error',
          ...(typeof code === 'string' ? { code: code as EgressErrorCode } : {}),
          ...(typeof rule === 'string' ? { rule } : {}),
        },
      }
    }
  }
  throw new MalformedMessageError('reply is neither "Ok" nor {"Err":{...}}')
}
