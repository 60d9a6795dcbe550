import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MalformedMessageError } from '../src/errors.js'
import {
  encodeReply,
  encodeRequest,
  MAX_MESSAGE_BYTES,
  MessageDecoder,
  parseReply,
  parseRequest,
} from '../src/wire.js'

describe("enclaver's egress handshake", () => {
  it('matches the documented bytes: example.com:443 and the Ok reply', () => {
    const request = encodeRequest({ host: 'example.com', port: 443 })
    expect(request.subarray(0, 2)).toEqual(Buffer.from([0x21, 0x00]))
    expect(request.subarray(2).toString()).toBe('{"host":"example.com","port":443}')
    expect(encodeReply('Ok')).toEqual(Buffer.from([0x04, 0x00, 0x22, 0x4f, 0x6b, 0x22]))
  })

  it("reads enclaver's error reply and our extension fields", () => {
    expect(parseReply({ Err: { os_code: 111, message: 'Connection refused' } })).toEqual({
      Err: { os_code: 111, message: 'Connection refused' },
    })
    expect(
      parseReply({
        Err: { os_code: 13, message: 'x', code: 'ENCLAVE_EGRESS_REFUSED', rule: 'deny rule "a"' },
      }),
    ).toMatchObject({
      Err: { code: 'ENCLAVE_EGRESS_REFUSED', rule: 'deny rule "a"' },
    })
    expect(() => parseReply('Nope')).toThrow(MalformedMessageError)
  })

  it('validates requests', () => {
    expect(parseRequest({ host: 'a.b', port: 1 })).toEqual({ host: 'a.b', port: 1 })
    for (const bad of [
      null,
      [],
      { host: '', port: 1 },
      { host: 'a', port: 0 },
      { host: 'a', port: 65536 },
      { host: 'a', port: 1.5 },
      { host: 1, port: 1 },
    ]) {
      expect(() => parseRequest(bad)).toThrow(MalformedMessageError)
    }
  })

  it('refuses a length above the bound before buffering it', () => {
    const header = Buffer.alloc(2)
    header.writeUInt16LE(MAX_MESSAGE_BYTES + 1)
    expect(() => new MessageDecoder().push(header)).toThrow(/exceeds/)
  })

  it('decodes the same message and rest for any split (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.domain(),
        fc.integer({ min: 1, max: 65535 }),
        fc.uint8Array({ maxLength: 32 }),
        fc.array(fc.integer({ min: 1, max: 16 }), { maxLength: 12 }),
        (host, port, tail, cuts) => {
          const bytes = Buffer.concat([encodeRequest({ host, port }), Buffer.from(tail)])
          const decoder = new MessageDecoder()
          let offset = 0
          let got: ReturnType<MessageDecoder['push']>
          for (const cut of [...cuts, bytes.length]) {
            if (got || offset >= bytes.length) break
            got = decoder.push(bytes.subarray(offset, offset + cut))
            offset += cut
          }
          expect(got).toBeDefined()
          expect(parseRequest(got!.value)).toEqual({ host, port })
          expect(Buffer.concat([got!.rest, bytes.subarray(Math.min(offset, bytes.length))])).toEqual(
            Buffer.from(tail),
          )
        },
      ),
    )
  })

  it('throws only typed errors on arbitrary bytes (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (noise) => {
        try {
          const got = new MessageDecoder().push(Buffer.from(noise))
          if (got) parseRequest(got.value)
        } catch (error) {
          expect(error).toBeInstanceOf(MalformedMessageError)
        }
      }),
    )
  })
})
