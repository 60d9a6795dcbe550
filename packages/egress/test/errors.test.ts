import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { EGRESS_ERROR_CLASSES, EGRESS_ERROR_CODES, EgressError } from '../src/errors.js'

describe('error codes', () => {
  it('the README table, the code list and the classes agree', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const documented = [...readme.matchAll(/^\| `(ENCLAVE_EGRESS_[A-Z_]+)`/gm)].map((m) => m[1])
    expect(documented.sort()).toEqual([...EGRESS_ERROR_CODES].sort())
    const fromClasses = EGRESS_ERROR_CLASSES.map((C) => {
      const e = new (C as unknown as new (...args: string[]) => EgressError)('x', 'y')
      expect(e).toBeInstanceOf(EgressError)
      expect(e.name).toBe(C.name)
      expect(readme).toContain(`\`${C.name}\``)
      return e.code
    })
    expect(fromClasses.sort()).toEqual([...EGRESS_ERROR_CODES].sort())
  })
})
