import fc from 'fast-check'
import { V2ProxyProtocol } from 'proxy-protocol-js'
import { describe, expect, it } from 'vitest'
import { MalformedProxyHeaderError } from '../src/errors.js'
import { encodeProxyV2, PP2_TYPE_SSL, PROXY_V2_SIGNATURE, ProxyV2Decoder, sslTlv } from '../src/proxy-v2.js'

const decodeAll = (bytes: Buffer) => new ProxyV2Decoder().push(bytes)

describe('PROXY v2 encoder, checked against proxy-protocol-js', () => {
  it('encodes TCP over IPv4', () => {
    const header = encodeProxyV2({
      source: { address: '192.0.2.10', port: 51234 },
      destination: { address: '198.51.100.1', port: 443 },
    })
    expect(header.subarray(0, 12).equals(PROXY_V2_SIGNATURE)).toBe(true)
    const parsed = V2ProxyProtocol.parse(new Uint8Array(header))
    expect(parsed.command).toBe(1) // PROXY
    expect(parsed.transportProtocol).toBe(1) // STREAM
    const addr = parsed.proxyAddress as unknown as {
      sourceAddress: { address: number[] }
      sourcePort: number
      destinationAddress: { address: number[] }
      destinationPort: number
    }
    expect([...addr.sourceAddress.address]).toEqual([192, 0, 2, 10])
    expect(addr.sourcePort).toBe(51234)
    expect([...addr.destinationAddress.address]).toEqual([198, 51, 100, 1])
    expect(addr.destinationPort).toBe(443)
  })

  it('encodes TCP over IPv6', () => {
    const header = encodeProxyV2({
      source: { address: '2001:db8::1', port: 1 },
      destination: { address: '::1', port: 65535 },
    })
    const parsed = V2ProxyProtocol.parse(new Uint8Array(header))
    const addr = parsed.proxyAddress as unknown as {
      sourceAddress: { address: number[] }
      sourcePort: number
      destinationPort: number
    }
    expect(addr.sourceAddress.address.slice(0, 4)).toEqual([0x20, 0x01, 0x0d, 0xb8])
    expect(addr.sourceAddress.address[15]).toBe(1)
    expect(addr.sourcePort).toBe(1)
    expect(addr.destinationPort).toBe(65535)
    expect(header[13]).toBe(0x21)
    expect(header.readUInt16BE(14)).toBe(36)
  })

  it('writes IPv4-mapped client addresses as IPv4', () => {
    const header = encodeProxyV2({
      source: { address: '::ffff:192.0.2.7', port: 9 },
      destination: { address: '127.0.0.1', port: 80 },
    })
    expect(header[13]).toBe(0x11)
    expect(decodeAll(header)?.value.source).toEqual({ address: '192.0.2.7', port: 9 })
  })

  it('encodes LOCAL and UNSPEC without addresses', () => {
    const local = encodeProxyV2({ command: 'local' })
    expect(V2ProxyProtocol.parse(new Uint8Array(local)).command).toBe(0)
    expect(local.length).toBe(16)
    const unspec = encodeProxyV2({})
    expect(unspec[12]).toBe(0x21)
    expect(unspec[13]).toBe(0x00)
    expect(decodeAll(unspec)?.value).toEqual({ command: 'proxy', family: 'unspec', tlvs: [] })
  })

  it('carries a PP2_TYPE_SSL TLV after the addresses', () => {
    const header = encodeProxyV2({
      source: { address: '10.0.0.1', port: 1000 },
      destination: { address: '10.0.0.2', port: 443 },
      tlvs: [sslTlv({ version: 'TLSv1.3', commonName: 'client-1', verified: true })],
    })
    const parsed = V2ProxyProtocol.parse(new Uint8Array(header))
    expect(parsed.command).toBe(1)
    const decoded = decodeAll(header)!.value
    expect(decoded.tlvs).toHaveLength(1)
    const ssl = decoded.tlvs[0]!
    expect(ssl.type).toBe(PP2_TYPE_SSL)
    expect(ssl.value[0]).toBe(0x03) // PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN
    expect(ssl.value.readUInt32BE(1)).toBe(0) // verified
    expect(ssl.value.subarray(5).toString('latin1')).toContain('TLSv1.3')
    expect(ssl.value.subarray(5).toString('latin1')).toContain('client-1')
  })
})

describe('PROXY v2 decoder', () => {
  it('decodes a header built by proxy-protocol-js and keeps the bytes after it', () => {
    const theirs = Buffer.from([
      13, 10, 13, 10, 0, 13, 10, 81, 85, 73, 84, 10, 0x21, 0x11, 0, 12, 127, 0, 0, 1, 192, 0, 2, 1, 48, 57,
      212, 49,
    ])
    const result = decodeAll(Buffer.concat([theirs, Buffer.from('GET /')]))!
    expect(result.value).toMatchObject({
      command: 'proxy',
      family: 'ipv4',
      source: { address: '127.0.0.1', port: 12345 },
      destination: { address: '192.0.2.1', port: 54321 },
    })
    expect(result.rest.toString()).toBe('GET /')
  })

  it('refuses a bad signature, a wrong version and an oversized header', () => {
    expect(() => decodeAll(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(MalformedProxyHeaderError)
    const v1 = encodeProxyV2({})
    v1[12] = 0x11
    expect(() => decodeAll(v1)).toThrow(/version 1/)
    const big = encodeProxyV2({})
    big.writeUInt16BE(60_000, 14)
    expect(() => decodeAll(big)).toThrow(/exceeds/)
  })

  it('gives the same result for every way of splitting the input (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.ipV4(),
        fc.ipV4(),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 0, max: 65535 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 10 }),
        (src, dst, sp, dp, payload, cuts) => {
          const bytes = Buffer.concat([
            encodeProxyV2({ source: { address: src, port: sp }, destination: { address: dst, port: dp } }),
            Buffer.from(payload),
          ])
          const decoder = new ProxyV2Decoder()
          let offset = 0
          let result: ReturnType<ProxyV2Decoder['push']>
          for (const cut of [...cuts, bytes.length]) {
            if (result || offset >= bytes.length) break
            result = decoder.push(bytes.subarray(offset, offset + cut))
            offset += cut
          }
          if (!result) return offset < bytes.length
          expect(result.value.source).toEqual({ address: src, port: sp })
          expect(result.value.destination).toEqual({ address: dst, port: dp })
          expect(
            Buffer.concat([result.rest, bytes.subarray(Math.min(offset, bytes.length))]).equals(
              Buffer.from(payload),
            ),
          ).toBe(true)
          return true
        },
      ),
    )
  })

  it('throws only typed errors on arbitrary input (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (noise, withSignature) => {
        const bytes = withSignature
          ? Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from(noise)])
          : Buffer.from(noise)
        try {
          new ProxyV2Decoder().push(bytes)
        } catch (error) {
          expect(error).toBeInstanceOf(MalformedProxyHeaderError)
        }
      }),
    )
  })
})
