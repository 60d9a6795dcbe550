import { isIPv4, isIPv6 } from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { formatIPv6, parseIPv4, parseIPv6 } from '../src/ip.js'

// The header codec parses and prints addresses itself (raw bytes, no resolver); Node's own
// validators and WHATWG URL serialisation are the independent references here.

const RUNS = { numRuns: 2000 }
const ipText = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.'), maxLength: 45 })

describe('IP literal parsing agrees with node:net', () => {
  it('IPv4: accepts exactly what isIPv4 accepts', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV4Extended(), ipText), (text) => {
        expect(parseIPv4(text) !== undefined).toBe(isIPv4(text))
      }),
      RUNS,
    )
  })

  it('IPv6: accepts exactly what isIPv6 accepts (no zone ids)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV6(), ipText), (text) => {
        expect(parseIPv6(text) !== undefined).toBe(isIPv6(text))
      }),
      RUNS,
    )
  })

  it('IPv6 text → bytes → text is the RFC 5952 form that WHATWG URL prints', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const bytes = parseIPv6(text)!
        const printed = formatIPv6(bytes)
        expect(parseIPv6(printed)).toEqual(bytes)
        const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff
        if (!mapped) expect(`[${printed}]`).toBe(new URL(`http://[${text}]/`).hostname)
      }),
      RUNS,
    )
  })

  it('prints IPv4-mapped addresses with a dotted quad, like Node sockets do', () => {
    expect(formatIPv6(parseIPv6('::ffff:c000:0280')!)).toBe('::ffff:192.0.2.128')
    expect(formatIPv6(parseIPv6('2001:db8:0:0:1:0:0:1')!)).toBe('2001:db8::1:0:0:1')
    expect(formatIPv6(parseIPv6('2001:0:0:1:0:0:0:1')!)).toBe('2001:0:0:1::1')
    expect(formatIPv6(parseIPv6('2001:db8:0:1:1:1:1:1')!)).toBe('2001:db8:0:1:1:1:1:1')
    expect(formatIPv6(Buffer.alloc(16))).toBe('::')
  })
})
