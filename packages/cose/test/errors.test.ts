import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

function readmeTable(): Array<{ code: string; className: string }> {
  const section = readme.split('## Errors')[1]?.split('\n## ')[0] ?? ''
  return [...section.matchAll(/^\|\s*`(ENCLAVE_COSE_[A-Z_]+)`\s*\|\s*`(\w+)`\s*\|/gm)].map((m) => ({
    code: m[1]!,
    className: m[2]!,
  }))
}

const classes = (Object.values(api) as unknown[]).filter(
  (v): v is new (message?: string) => api.CoseError =>
    typeof v === 'function' && (v as { prototype: unknown }).prototype instanceof api.CoseError,
)

describe('error codes', () => {
  it('the README table, the code list and the exported classes agree', () => {
    const table = readmeTable()
    expect(table.map((r) => r.code).sort()).toEqual([...api.COSE_ERROR_CODES].sort())
    expect(classes.map((c) => c.name).sort()).toEqual(table.map((r) => r.className).sort())
    for (const row of table) {
      const C = classes.find((c) => c.name === row.className)!
      const err = new C('message')
      expect(err).toMatchObject({ code: row.code, name: row.className, message: 'message' })
      expect(err).toBeInstanceOf(api.CoseError)
      expect(err).toBeInstanceOf(Error)
    }
  })

  it('each class has its own code and keeps its cause', () => {
    const codes = classes.map((C) => new C('m').code)
    expect(new Set(codes).size).toBe(codes.length)
    const cause = new Error('inner')
    expect(new api.CoseSignerFailedError('outer', { cause }).cause).toBe(cause)
  })
})
