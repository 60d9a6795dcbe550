import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type ConsoleEvent,
  cleanLine,
  createLineSplitter,
  judge,
  mergeVerdicts,
  parseLine,
} from '../lib/console.mjs'

describe('parseLine', () => {
  it('reads each kind of protocol line', () => {
    expect(parseLine('VMTEST info kernel 6.1.0-56-amd64, 2 cpu(s)')).toEqual({
      kind: 'info',
      text: 'kernel 6.1.0-56-amd64, 2 cpu(s)',
    })
    expect(parseLine('VMTEST ok vsock-transport/echo in 1.2 s')).toEqual({
      kind: 'ok',
      suite: 'vsock-transport/echo',
      detail: 'in 1.2 s',
    })
    expect(parseLine('VMTEST fail tunnel/basic exit code 1 after 3.0 s: boom')).toEqual({
      kind: 'fail',
      suite: 'tunnel/basic',
      reason: 'exit code 1 after 3.0 s: boom',
    })
    expect(parseLine('VMTEST summary 3 passed, 1 failed')).toEqual({ kind: 'summary', passed: 3, failed: 1 })
  })

  it('accepts serial line endings and terminal escapes', () => {
    expect(parseLine('\u001b[0mVMTEST ok vm/boot in 1.0 s\r')).toEqual({
      kind: 'ok',
      suite: 'vm/boot',
      detail: 'in 1.0 s',
    })
    expect(cleanLine('a\u001b[2Jb\r')).toBe('ab')
  })

  it('ignores lines where the marker does not start the line (suite output cannot fake a result)', () => {
    expect(parseLine('[x/y] VMTEST ok x/y')).toBeUndefined()
    expect(parseLine('[    6.07] reboot: Power down')).toBeUndefined()
    expect(parseLine('VMTESTok a')).toBeUndefined()
  })

  it('rejects malformed protocol lines', () => {
    expect(parseLine('VMTEST ok')).toBeUndefined()
    expect(parseLine('VMTEST fail ')).toBeUndefined()
    expect(parseLine('VMTEST summary 3 passed')).toBeUndefined()
    expect(parseLine('VMTEST summary x passed, 0 failed')).toBeUndefined()
    expect(parseLine('VMTEST pass a')).toBeUndefined()
  })

  it('never throws, whatever the console sends', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        const event = parseLine(`VMTEST ${s}`)
        if (event !== undefined) expect(['info', 'ok', 'fail', 'summary']).toContain(event.kind)
      }),
    )
  })
})

describe('createLineSplitter', () => {
  it('yields the same lines however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 20 }), { maxLength: 20 }), fc.nat(), (lines, seed) => {
        const text = lines.map((l) => l.replaceAll('\n', '')).join('\n')
        const splitter = createLineSplitter()
        const out: string[] = []
        let at = 0
        let step = (seed % 7) + 1
        while (at < text.length) {
          out.push(...splitter.push(text.slice(at, at + step)))
          at += step
          step = (step % 5) + 1
        }
        out.push(...splitter.end())
        // A trailing newline ends the last line; it does not start an empty one.
        const expected = text.split('\n')
        if (expected.at(-1) === '') expected.pop()
        expect(out).toEqual(expected)
      }),
    )
  })

  it('bounds a line that never ends', () => {
    const splitter = createLineSplitter()
    const lines = splitter.push('x'.repeat(70 * 1024))
    expect(lines).toHaveLength(1)
    expect(splitter.end()).toEqual([])
  })
})

describe('judge', () => {
  const ok = (suite: string): ConsoleEvent => ({ kind: 'ok', suite, detail: '' })
  const fail = (suite: string): ConsoleEvent => ({ kind: 'fail', suite, reason: 'exit code 1' })
  const summary = (passed: number, failed: number): ConsoleEvent => ({ kind: 'summary', passed, failed })

  it('passes a complete run with no failure', () => {
    const verdict = judge([ok('a'), ok('b'), summary(2, 0)], { expectedSuites: ['a', 'b'] })
    expect(verdict).toEqual({ ok: true, passed: ['a', 'b'], failed: [], problems: [] })
  })

  it('fails a run with a failed suite', () => {
    const verdict = judge([ok('a'), fail('b'), summary(1, 1)])
    expect(verdict.ok).toBe(false)
    expect(verdict.failed).toEqual([{ suite: 'b', reason: 'exit code 1' }])
    expect(verdict.problems).toEqual([])
  })

  it('fails a run that stopped before its summary (panic, timeout)', () => {
    const verdict = judge([ok('a')])
    expect(verdict.ok).toBe(false)
    expect(verdict.problems).toEqual(['the guest never printed its summary line'])
  })

  it('fails when the summary disagrees with the suite lines', () => {
    const verdict = judge([ok('a'), summary(2, 0)])
    expect(verdict.ok).toBe(false)
    expect(verdict.problems[0]).toMatch(/says 2 passed, 0 failed .* showed 1 passed, 0 failed/)
  })

  it('fails when no suite ran, or an expected suite has no result', () => {
    expect(judge([summary(0, 0)]).problems).toContain('no suite ran')
    const verdict = judge([ok('a'), summary(1, 0)], { expectedSuites: ['a', 'b'] })
    expect(verdict.ok).toBe(false)
    expect(verdict.problems).toEqual(['no result for: b'])
  })
})

describe('mergeVerdicts', () => {
  const good = { ok: true, passed: ['vm/boot'], failed: [], problems: [] }
  it('keeps every suite and problem of each boot, and is ok only if each is', () => {
    const bad = {
      ok: false,
      passed: [],
      failed: [{ suite: 'vm/eif-boot', reason: 'no line' }],
      problems: ['killed'],
    }
    expect(mergeVerdicts([good, bad])).toEqual({
      ok: false,
      passed: ['vm/boot'],
      failed: [{ suite: 'vm/eif-boot', reason: 'no line' }],
      problems: ['killed'],
    })
    expect(mergeVerdicts([good, { ...good, passed: ['vm/eif-boot'] }])).toEqual({
      ok: true,
      passed: ['vm/boot', 'vm/eif-boot'],
      failed: [],
      problems: [],
    })
  })
  it('is not ok for no boot at all', () => {
    expect(mergeVerdicts([]).ok).toBe(false)
  })
})
