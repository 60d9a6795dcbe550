import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'

// The README's error table, the exported code list and the classes must agree.
describe('error codes', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const rows = [...readme.matchAll(/^\|\s*`(ENCLAVE_BRIDGE_HOST_[A-Z_]+)`\s*\|\s*`(\w+)`\s*\|/gm)].map(
    (m) => [m[1], m[2]],
  )

  it('the README lists every code once, with its class', () => {
    expect(rows.map((r) => r[0]).sort()).toEqual([...api.BRIDGE_HOST_ERROR_CODES].sort())
  })

  it('each class carries the code the README gives it', () => {
    for (const [code, name] of rows) {
      const Cls = (api as unknown as Record<string, new (...args: unknown[]) => api.BridgeHostError>)[
        name as string
      ]
      expect(Cls, name).toBeTypeOf('function')
      // Constructors take what each failure needs; an array fits InvalidEnvError's list too.
      const args = name === 'InvalidEnvError' ? [[{ variable: 'A', message: 'b' }]] : ['a', 'b', 'c']
      const err = new (Cls as new (...args: unknown[]) => api.BridgeHostError)(...args)
      expect(err).toBeInstanceOf(api.BridgeHostError)
      expect(err.code).toBe(code)
      expect(err.name).toBe(name)
    }
  })
})
