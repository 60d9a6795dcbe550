import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ERROR_CLASSES, errorFromWire, type PipelineErrorCode } from '../src/errors.js'
import * as api from '../src/index.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('errors', () => {
  const rows = [...readme.matchAll(/^\| `(ENCLAVE_PIPELINE_[A-Z_]+)`\s*\| `(\w+)`/gm)].map((m) => [
    m[1],
    m[2],
  ])

  it('the README table, the code union and the classes agree', () => {
    expect(rows.map(([code]) => code).sort()).toEqual(Object.keys(ERROR_CLASSES).sort())
    for (const [code, name] of rows) {
      const Class = ERROR_CLASSES[code as PipelineErrorCode]
      const error = new Class('x')
      expect(error.code).toBe(code)
      expect(error.name).toBe(name)
      expect((api as Record<string, unknown>)[name!]).toBe(Class)
      expect(api.isPipelineError(error)).toBe(true)
    }
  })

  it('rebuilds a peer error into its class, and an unknown code into a protocol violation', () => {
    const error = errorFromWire('ENCLAVE_PIPELINE_NO_SPACE', 'full')
    expect(error).toBeInstanceOf(api.NoSpaceError)
    expect(error.remote).toBe(true)
    expect(errorFromWire('toString', 'x')).toBeInstanceOf(api.ProtocolViolationError)
  })
})
