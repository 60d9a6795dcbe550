import { describe, expect, it } from 'vitest'
import {
  AckDecoder,
  BufferOverflowError,
  DecoderDoneError,
  decodeFrame,
  decodeOriginalDestination,
  encodeFrame,
  encodeHeartbeat,
  encodeJsonLine,
  encodeLine,
  encodeOriginalDestination,
  encodePipelineString,
  encodePipelineU64,
  FrameDecoder,
  FrameTooLargeError,
  HeartbeatDecoder,
  InvalidAckError,
  InvalidAddressError,
  InvalidJsonError,
  InvalidOptionError,
  InvalidPaddingError,
  InvalidUtf8Error,
  InvalidUuidError,
  InvalidValueError,
  isProtocolError,
  JsonLinesDecoder,
  LineDecoder,
  LineTooLongError,
  MalformedHeaderError,
  MalformedHeartbeatError,
  OriginalDestinationDecoder,
  PipelineReader,
  ProtocolError,
  TruncatedInputError,
  uuidToBytes,
} from '../src/index.js'

const hex = (text: string) => Buffer.from(text.replaceAll(' ', ''), 'hex')

describe('length prefixes are checked before anything is allocated', () => {
  it('FrameDecoder rejects a 4 GiB prefix on its 4 bytes alone', () => {
    const decoder = new FrameDecoder()
    const error = (() => {
      try {
        decoder.push(hex('ff ff ff ff'))
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(FrameTooLargeError)
    expect(error).toMatchObject({
      code: 'ENCLAVE_PROTOCOL_FRAME_TOO_LARGE',
      length: 0xffffffff,
      maxLength: 16 * 1024 * 1024,
    })
    expect(decoder.bufferedLength).toBe(0)
    expect(() => decodeFrame(hex('00 00 00 21'), { maxFrameLength: 32 })).toThrow(FrameTooLargeError)
  })

  it('PipelineReader rejects a huge string length on its 9 bytes alone', () => {
    const reader = new PipelineReader({ maxStringLength: 8192 })
    reader.push(hex('ff ff ff ff ff ff ff ff 00'))
    expect(() => reader.readString()).toThrow(FrameTooLargeError)
    // Sticky: the stream is out of step for good.
    expect(() => reader.readU64()).toThrow(FrameTooLargeError)
    expect(() => reader.push(hex('00'))).toThrow(FrameTooLargeError)
  })

  it('LineDecoder fails once a line passes the limit, without waiting for its 0x0A', () => {
    const decoder = new LineDecoder({ maxLineLength: 4 })
    expect(decoder.push(Buffer.from('abcd'))).toEqual([])
    expect(() => decoder.push(Buffer.from('e'))).toThrow(LineTooLongError)
    expect(new LineDecoder({ maxLineLength: 4 }).push(Buffer.from('abcd\n'))).toEqual([Buffer.from('abcd')])
  })

  it('PipelineReader refuses to buffer unread bytes past maxStringLength + 9', () => {
    const reader = new PipelineReader({ maxStringLength: 8 })
    reader.push(Buffer.alloc(18))
    expect(() => reader.push(Buffer.alloc(1))).toThrow(BufferOverflowError)
  })
})

describe('bad bytes give the named error', () => {
  it('original-destination header with version 5 fails on the first byte', () => {
    expect(() => decodeOriginalDestination(hex('05'))).toThrow(MalformedHeaderError)
    expect(() => new OriginalDestinationDecoder().push(hex('00'))).toThrow(/IP version 0; expected 4 or 6/)
    expect(decodeOriginalDestination(hex('06 00 00'))).toBeUndefined()
  })

  it('ACK: a wrong first byte fails at once, a wrong second byte too', () => {
    expect(() => new AckDecoder().push(hex('0a'))).toThrow(InvalidAckError)
    const decoder = new AckDecoder()
    expect(decoder.push(hex('06'))).toBeUndefined()
    expect(() => decoder.push(hex('0d'))).toThrow(/second byte is 0x0d/)
  })

  it('heartbeat: a 17th byte other than 0x0A means the stream is out of step', () => {
    const record = encodeHeartbeat('123e4567-e89b-12d3-a456-426614174000')
    record[16] = 0x0d
    expect(() => new HeartbeatDecoder().push(record)).toThrow(MalformedHeartbeatError)
  })

  it('JSON lines: bad JSON, bad UTF-8 and blank lines', () => {
    expect(() => new JsonLinesDecoder().push(Buffer.from('{"a":\n'))).toThrow(InvalidJsonError)
    expect(() => new JsonLinesDecoder().push(hex('22 ff 22 0a'))).toThrow(/not valid UTF-8/)
    expect(() => new JsonLinesDecoder().push(Buffer.from('\n'))).toThrow(InvalidJsonError)
    // CRLF is accepted: \r is JSON whitespace.
    expect(new JsonLinesDecoder().push(Buffer.from('{"a":1}\r\n'))).toEqual([{ a: 1 }])
  })

  it('pipeline: a non-zero pad byte, bad UTF-8, a u64 beyond 2^53', () => {
    const pad = new PipelineReader()
    pad.push(hex('05 00 00 00 00 00 00 00 01'))
    expect(() => pad.readU64()).toThrow(InvalidPaddingError)

    const utf8 = new PipelineReader()
    utf8.push(hex('01 00 00 00 00 00 00 00 00 ff'))
    expect(() => utf8.readString()).toThrow(InvalidUtf8Error)

    const big = new PipelineReader()
    big.push(encodePipelineU64(2n ** 60n))
    expect(() => big.readU64()).toThrow(InvalidValueError)
    // Not sticky, nothing consumed: the value is still readable as a bigint.
    expect(big.readU64BigInt()).toBe(2n ** 60n)
  })
})

describe('decoder life cycle', () => {
  it('returns good messages before bad bytes, then throws the error on the next call', () => {
    const decoder = new JsonLinesDecoder()
    expect(decoder.push(Buffer.from('1\n2\nnope\n3\n'))).toEqual([1, 2])
    expect(decoder.bufferedLength).toBe(0)
    expect(() => decoder.push(Buffer.from('4\n'))).toThrow(InvalidJsonError)
    expect(() => decoder.end()).toThrow(InvalidJsonError)
  })

  it('end() inside a message is TruncatedInputError; at a boundary it is fine', () => {
    const frames = new FrameDecoder()
    frames.push(encodeFrame(Buffer.from('ok')))
    frames.end()
    const partial = new FrameDecoder()
    partial.push(hex('00 00 00 05 01'))
    expect(() => partial.end()).toThrow(TruncatedInputError)
    expect(() => new OriginalDestinationDecoder().end()).toThrow(TruncatedInputError)
    const reader = new PipelineReader()
    reader.push(hex('05 00'))
    expect(reader.readU64()).toBeUndefined()
    reader.end()
    expect(() => reader.readU64()).toThrow(TruncatedInputError)
  })

  it('a preamble decoder refuses bytes after its value: they belong to the next stage', () => {
    const decoder = new OriginalDestinationDecoder()
    expect(decoder.push(encodeOriginalDestination({ host: '10.0.0.1', port: 80 }))).toBeDefined()
    expect(decoder.done).toBe(true)
    expect(() => decoder.push(Buffer.from('x'))).toThrow(DecoderDoneError)
    decoder.end()
  })

  it('refuses a chunk that is not bytes, naming the likely cause', () => {
    expect(() => new FrameDecoder().push('text' as unknown as Buffer)).toThrow(/setEncoding/)
    expect(() => new PipelineReader().readBytes(-1)).toThrow(InvalidValueError)
    expect(() => new PipelineReader().take(Number.NaN)).toThrow(InvalidValueError)
  })

  it('remaining() does not consume; the pipeline take() does', () => {
    const reader = new PipelineReader()
    reader.push(Buffer.concat([encodePipelineU64(3), Buffer.from('abcdef')]))
    expect(reader.readU64()).toBe(3)
    expect(reader.remaining().toString()).toBe('abcdef')
    expect(reader.take(4).toString()).toBe('abcd')
    expect(reader.take(100).toString()).toBe('ef')
    expect(reader.take(100).length).toBe(0)
  })
})

describe('encoders refuse what the wire cannot carry', () => {
  it.each([
    [
      'a payload over maxFrameLength',
      () => encodeFrame(Buffer.alloc(33), { maxFrameLength: 32 }),
      FrameTooLargeError,
    ],
    ['a line containing 0x0A', () => encodeLine('a\nb'), InvalidValueError],
    ['a line over maxLineLength', () => encodeLine('abcde', { maxLineLength: 4 }), LineTooLongError],
    ['a line with a lone surrogate', () => encodeLine('\ud800'), InvalidValueError],
    ['undefined as JSON', () => encodeJsonLine(undefined), InvalidJsonError],
    ['a BigInt as JSON', () => encodeJsonLine({ n: 1n }), InvalidJsonError],
    [
      'a JSON line over maxLineLength',
      () => encodeJsonLine('x'.repeat(10), { maxLineLength: 11 }),
      LineTooLongError,
    ],
    [
      'a host name instead of an IP',
      () => encodeOriginalDestination({ host: 'example.com', port: 443 }),
      InvalidAddressError,
    ],
    [
      'an IPv4 with a leading zero',
      () => encodeOriginalDestination({ host: '01.2.3.4', port: 443 }),
      InvalidAddressError,
    ],
    [
      'an IPv6 zone id',
      () => encodeOriginalDestination({ host: 'fe80::1%eth0', port: 443 }),
      InvalidAddressError,
    ],
    [
      'an IPv4 host with family 6',
      () => encodeOriginalDestination({ host: '1.2.3.4', port: 443, family: 6 }),
      InvalidAddressError,
    ],
    ['port 65536', () => encodeOriginalDestination({ host: '1.2.3.4', port: 65536 }), InvalidValueError],
    ['a fractional port', () => encodeOriginalDestination({ host: '1.2.3.4', port: 1.5 }), InvalidValueError],
    ['a negative u64', () => encodePipelineU64(-1), InvalidValueError],
    ['a u64 of 2^64', () => encodePipelineU64(2n ** 64n), InvalidValueError],
    ['a fractional u64', () => encodePipelineU64(0.5), InvalidValueError],
    ['a pipeline string with a lone surrogate', () => encodePipelineString('ab\udc00'), InvalidValueError],
    [
      'a pipeline string over maxStringLength',
      () => encodePipelineString('abc', { maxStringLength: 2 }),
      FrameTooLargeError,
    ],
    ['a malformed UUID string', () => uuidToBytes('not-a-uuid'), InvalidUuidError],
    ['15 UUID bytes', () => encodeHeartbeat(Buffer.alloc(15)), InvalidUuidError],
  ] as const)('%s', (_name, encode, ErrorClass) => {
    expect(encode).toThrow(ErrorClass)
  })

  it('a cyclic value is an InvalidJsonError with the cause kept', () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    try {
      encodeJsonLine(cyclic)
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidJsonError)
      expect((error as Error).cause).toBeInstanceOf(TypeError)
    }
  })
})

describe('options', () => {
  it.each([0, -1, 1.5, 2 ** 32, Number.NaN, '16'])('maxFrameLength %s is refused with its range', (value) => {
    expect(() => new FrameDecoder({ maxFrameLength: value as number })).toThrow(
      /maxFrameLength must be an integer from 1 to \d+ \(bytes\)/,
    )
  })

  it('every decoder validates its limit', () => {
    expect(() => new LineDecoder({ maxLineLength: 0 })).toThrow(InvalidOptionError)
    expect(() => new JsonLinesDecoder({ maxLineLength: -5 })).toThrow(InvalidOptionError)
    expect(() => new PipelineReader({ maxStringLength: 2 ** 40 })).toThrow(InvalidOptionError)
  })

  it('does not mutate the caller’s options', () => {
    const options = Object.freeze({ maxFrameLength: 10 })
    expect(() => new FrameDecoder(options)).not.toThrow()
  })
})

describe('isProtocolError', () => {
  it('recognises our errors, also a copy from the other module format', () => {
    expect(isProtocolError(new TruncatedInputError('x'))).toBe(true)
    const fromOtherCopy = Object.assign(new Error('x'), { code: 'ENCLAVE_PROTOCOL_TRUNCATED' })
    expect(isProtocolError(fromOtherCopy)).toBe(true)
    expect(isProtocolError(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe(false)
    expect(isProtocolError({ code: 'ENCLAVE_PROTOCOL_TRUNCATED' })).toBe(false)
    expect(new InvalidAckError('x')).toBeInstanceOf(ProtocolError)
  })
})
