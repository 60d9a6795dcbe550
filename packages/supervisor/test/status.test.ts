import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type EnclaveStatus,
  EXIT_FATAL,
  EXIT_SIGNALED,
  encodeStatus,
  exitCodeForStatus,
  parseStatus,
  StatusDecoder,
  StatusInvalidError,
} from '../src/index.js'

const decodeAll = (bytes: Buffer): EnclaveStatus[] => new StatusDecoder().push(bytes)

describe('status channel', () => {
  it('encodes the exact JSON shapes enclaver uses', () => {
    expect(encodeStatus({ status: 'running' }).toString()).toBe('{"status":"running"}\n')
    expect(encodeStatus({ status: 'exited', code: 3 }).toString()).toBe('{"status":"exited","code":3}\n')
    expect(encodeStatus({ status: 'signaled', signal: 'SIGTERM' }).toString()).toBe(
      '{"status":"signaled","signal":"SIGTERM"}\n',
    )
    expect(encodeStatus({ status: 'fatal', error: 'a "b"\nc' }).toString()).toBe(
      '{"status":"fatal","error":"a \\"b\\"\\nc"}\n',
    )
  })

  it('parses every status it sends, including signaled (enclaver host regression)', () => {
    for (const s of [
      { status: 'running' },
      { status: 'exited', code: 0 },
      { status: 'exited', code: 255 },
      { status: 'signaled', signal: 'SIGKILL' },
      { status: 'fatal', error: 'boom' },
    ] as EnclaveStatus[]) {
      expect(decodeAll(encodeStatus(s))).toEqual([s])
    }
  })

  it('accepts a numeric signal and names it', () => {
    expect(parseStatus({ status: 'signaled', signal: 15 })).toEqual({ status: 'signaled', signal: 'SIGTERM' })
  })

  it('round-trips arbitrary fatal messages, split at any byte', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.nat(400), (error, cut) => {
        const bytes = encodeStatus({ status: 'fatal', error })
        expect(bytes.subarray(0, -1).includes(0x0a)).toBe(false)
        const decoder = new StatusDecoder()
        const at = Math.min(cut, bytes.length)
        const out = [...decoder.push(bytes.subarray(0, at)), ...decoder.push(bytes.subarray(at))]
        // Lone surrogates become U+FFFD through UTF-8, exactly as on any JSON wire.
        expect(out).toEqual([{ status: 'fatal', error: Buffer.from(error, 'utf8').toString('utf8') }])
      }),
      { numRuns: 100 },
    )
  })

  it('rejects malformed statuses with a typed error', () => {
    for (const bad of [
      '[]\n',
      '{"status":"exploded"}\n',
      '{"status":"exited"}\n',
      '{"status":"exited","code":1.5}\n',
      '{"status":"signaled","signal":null}\n',
      '{"status":"fatal"}\n',
      'not json\n',
    ]) {
      expect(() => decodeAll(Buffer.from(bad)), bad).toThrow(StatusInvalidError)
    }
  })

  it('never throws anything but StatusInvalidError on random input (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          new StatusDecoder().push(bytes)
        } catch (err) {
          expect(err).toBeInstanceOf(StatusInvalidError)
        }
      }),
    )
  })

  it('maps final statuses to enclaver-run exit codes', () => {
    expect(exitCodeForStatus({ status: 'exited', code: 7 })).toBe(7)
    expect(exitCodeForStatus({ status: 'exited', code: 256 + 4 })).toBe(4)
    expect(exitCodeForStatus({ status: 'signaled', signal: 'SIGKILL' })).toBe(EXIT_SIGNALED)
    expect(exitCodeForStatus({ status: 'fatal', error: 'x' })).toBe(EXIT_FATAL)
    expect(exitCodeForStatus({ status: 'running' })).toBeUndefined()
  })
})

describe('status channel: lenient host decoding', () => {
  it("reads enclaver's unescaped fatal messages as fatal with the raw text", () => {
    const out = new StatusDecoder().push(Buffer.from('{"status":"fatal","error":"bad "quoted" thing"}\n'))
    expect(out).toEqual([{ status: 'fatal', error: 'bad "quoted" thing' }])
  })

  it('skips and reports bad lines instead of aborting, then still sees the final status', () => {
    const bad: string[] = []
    const decoder = new StatusDecoder({ onInvalid: (err, line) => bad.push(`${err.code} ${line}`) })
    const out = decoder.push(
      Buffer.from('{"status":"running"}\nnot json\n{"status":"exploded"}\n{"status":"exited","code":4}\n'),
    )
    expect(out).toEqual([{ status: 'running' }, { status: 'exited', code: 4 }])
    expect(bad).toHaveLength(2)
    expect(bad[0]).toContain('not json')
  })

  it('drops an overlong line (bounded memory) and recovers at the next newline', () => {
    const bad: string[] = []
    const decoder = new StatusDecoder({ onInvalid: (_err, line) => bad.push(line) })
    const out = [
      ...decoder.push(Buffer.alloc(40_000, 0x61)),
      ...decoder.push(Buffer.from('\n{"status":"exited","code":1}\n')),
    ]
    expect(out).toEqual([{ status: 'exited', code: 1 }])
    expect(bad).toHaveLength(1)
  })
})
