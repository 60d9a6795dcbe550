import { readFileSync } from 'node:fs'
import { format } from 'node:util'
import { describe, expect, it } from 'vitest'
import * as protocol from '../src/index.js'
import { PROTOCOL_ERROR_CLASSES, ProtocolError } from '../src/index.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('error table, exported code list and classes agree', () => {
    const rows = [...readme.matchAll(/^\|\s*`(ENCLAVE_PROTOCOL_[A-Z0-9_]+)`\s*\|\s*`(\w+)`\s*\|/gm)].map(
      (m) => [m[1], m[2]],
    )
    expect(rows.length).toBeGreaterThan(0)
    expect(rows).toEqual(Object.entries(PROTOCOL_ERROR_CLASSES).map(([code, Class]) => [code, Class.name]))

    // Every exported error class is in the table, is exported under its own name, and carries its code.
    const exported = Object.entries(protocol).filter(
      ([, value]) => typeof value === 'function' && value.prototype instanceof ProtocolError,
    )
    expect(exported.map(([name]) => name).sort()).toEqual(rows.map(([, name]) => name).sort())
    for (const [code, Class] of Object.entries(PROTOCOL_ERROR_CLASSES)) {
      const error = new (Class as unknown as new (...args: unknown[]) => ProtocolError)(
        ...(Class === protocol.FrameTooLargeError
          ? [1, 0, 'm']
          : Class === protocol.LineTooLongError
            ? [0, 'm']
            : ['m']),
      )
      expect(error).toBeInstanceOf(ProtocolError)
      expect(error.code).toBe(code)
      expect(error.name).toBe(Class.name)
      expect(error.message).toBe('m')
    }
  })

  it('the example runs and prints what its comments say', () => {
    const block = /```js\n([\s\S]*?)```/.exec(readme)?.[1]
    expect(block).toBeDefined()
    const code = block!.replace(/^import \{([^}]+)\} from '@enclave\/protocol'$/m, 'const {$1} = protocol')
    expect(code).not.toMatch(/^import /m)
    const printed: string[] = []
    const fakeConsole = { log: (...args: unknown[]) => printed.push(format(...args)) }
    new Function('protocol', 'console', 'Buffer', code)(protocol, fakeConsole, Buffer)
    const expected = [...block!.matchAll(/^\/\/ prints: (.*)$/gm)].map((m) => m[1])
    expect(printed).toEqual(expected)
  })

  it('the options table matches PROTOCOL_DEFAULTS', () => {
    const defaults = [...readme.matchAll(/^\|\s*`(max\w+)`\s*\|\s*`(\w+)`[^|]*\|[^|]*\|\s*(\d+) /gm)].map(
      (m) => [m[2], m[1], Number(m[3])],
    )
    expect(defaults).toEqual([
      ['LineDecoder', 'maxLineLength', protocol.PROTOCOL_DEFAULTS.line.maxLineLength],
      ['JsonLinesDecoder', 'maxLineLength', protocol.PROTOCOL_DEFAULTS.jsonLines.maxLineLength],
      ['FrameDecoder', 'maxFrameLength', protocol.PROTOCOL_DEFAULTS.frame.maxFrameLength],
      ['PipelineReader', 'maxStringLength', protocol.PROTOCOL_DEFAULTS.pipeline.maxStringLength],
    ])
  })
})
