import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  encodeProxyV1,
  PROXY_V1_MAX_BYTES,
  type ProxyHeader,
  ProxyHeaderError,
  parseProxyV1,
} from '../src/index.js'

describe('PROXY protocol v1', () => {
  it('parses the spec examples', () => {
    expect(parseProxyV1('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443')).toEqual({
      family: 'TCP4',
      source: '192.168.0.1',
      destination: '192.168.0.11',
      sourcePort: 56324,
      destinationPort: 443,
    })
    expect(parseProxyV1('PROXY TCP6 ::1 2001:db8::1 1 65535')).toMatchObject({
      family: 'TCP6',
      destinationPort: 65535,
    })
    expect(parseProxyV1('PROXY UNKNOWN')).toEqual({ family: 'UNKNOWN' })
  })

  it.each([
    'GET / HTTP/1.1',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1',
    'PROXY TCP4 ::1 ::1 1 2',
    'PROXY TCP6 1.2.3.4 5.6.7.8 1 2',
    'PROXY TCP4 1.2.3.4 5.6.7.8 01 2',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 70000',
    'PROXY UDP4 1.2.3.4 5.6.7.8 1 2',
  ])('rejects %j with ProxyHeaderError', (line) => {
    expect(() => parseProxyV1(line)).toThrow(ProxyHeaderError)
  })

  it('round-trips every valid header within 107 bytes (property)', () => {
    const v4 = fc.ipV4()
    const v6 = fc.ipV6()
    const p = fc.integer({ min: 0, max: 65535 })
    const header: fc.Arbitrary<ProxyHeader> = fc.oneof(
      fc.record({
        family: fc.constant('TCP4' as const),
        source: v4,
        destination: v4,
        sourcePort: p,
        destinationPort: p,
      }),
      fc.record({
        family: fc.constant('TCP6' as const),
        source: v6,
        destination: v6,
        sourcePort: p,
        destinationPort: p,
      }),
    )
    fc.assert(
      fc.property(header, (h) => {
        const line = encodeProxyV1(h)
        expect(line.length).toBeLessThanOrEqual(PROXY_V1_MAX_BYTES)
        expect(parseProxyV1(line.slice(0, -2))).toEqual(h)
      }),
    )
  })

  it('never throws anything but ProxyHeaderError on arbitrary text (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `PROXY ${s}`),
        ),
        (line) => {
          try {
            parseProxyV1(line)
          } catch (err) {
            if (!(err instanceof ProxyHeaderError)) throw err
          }
        },
      ),
      { numRuns: 1000 },
    )
  })
})
