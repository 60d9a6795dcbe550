import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { crc32, crc32Combine } from '../src/crc.js'

describe('crc32', () => {
  it('gives the CRC-32/ISO-HDLC check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926)
  })

  it('agrees with python3 zlib.crc32 (an independent implementation)', () => {
    const data = randomBytes(100_003)
    const py = execFileSync(
      'python3',
      ['-c', 'import sys,zlib; print(zlib.crc32(sys.stdin.buffer.read()))'],
      {
        input: data,
      },
    )
    expect(crc32(data)).toBe(Number(py.toString().trim()))
  })

  it('combines the CRCs of two parts into the CRC of their concatenation', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
        const whole = crc32(Buffer.concat([a, b]))
        expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(whole)
      }),
      { numRuns: 300 },
    )
  })

  it('combines across a length that is not a safe 32-bit shift (> 4 GiB) consistently', () => {
    // Combining with B = zeros of length n equals continuing the CRC over n zero bytes; check the
    // large-length path against the small-length path split in two steps.
    const a = crc32(Buffer.from('header'))
    const zeros = (n: number) => crc32(Buffer.alloc(n))
    const step = crc32Combine(crc32Combine(a, zeros(1000), 1000), zeros(24), 24)
    expect(crc32Combine(a, zeros(1024), 1024)).toBe(step)
    const big = 2 ** 33 + 5
    const split = crc32Combine(crc32Combine(a, 0, 2 ** 33), 0, 5)
    // crc(0^n) is not 0, but combining CRC 0 still shifts by n; both paths must agree.
    expect(crc32Combine(a, 0, big)).toBe(split)
  })
})
