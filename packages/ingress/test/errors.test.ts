import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { INGRESS_ERROR_CLASSES, INGRESS_ERROR_CODES, IngressError } from '../src/errors.js'

describe('error codes', () => {
  it('the README table, the code list and the classes agree', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const documented = [...readme.matchAll(/^\| `(ENCLAVE_INGRESS_[A-Z_]+)`/gm)].map((m) => m[1])
    expect(documented.sort()).toEqual([...INGRESS_ERROR_CODES].sort())
    const codes = INGRESS_ERROR_CLASSES.map((C) => {
      const e = new (C as unknown as new (...args: unknown[]) => IngressError)('x', 'y', 1)
      expect(e).toBeInstanceOf(IngressError)
      expect(e.name).toBe(C.name)
      expect(readme).toContain(`\`${C.name}\``)
      return e.code
    })
    expect(codes.sort()).toEqual([...INGRESS_ERROR_CODES].sort())
  })
})
