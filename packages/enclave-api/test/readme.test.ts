import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'
import { ENCLAVE_API_DEFAULTS, ENCLAVE_API_ERROR_CLASSES, EnclaveApiError } from '../src/index.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('error table, exported code list, classes and statuses agree', () => {
    const rows = [
      ...readme.matchAll(/^\|\s*`(ENCLAVE_API_[A-Z0-9_]+)`\s*\|\s*`(\w+)`\s*\|\s*([\d—]+)\s*\|/gm),
    ].map((m) => [m[1], m[2], m[3]])
    expect(rows.length).toBeGreaterThan(0)
    const exported = Object.entries(api).filter(
      ([, value]) => typeof value === 'function' && value.prototype instanceof EnclaveApiError,
    )
    expect(exported.map(([name]) => name).sort()).toEqual(rows.map(([, name]) => name).sort())
    expect(rows.map(([code, name]) => [code, name])).toEqual(
      Object.entries(ENCLAVE_API_ERROR_CLASSES).map(([code, Class]) => [code, Class.name]),
    )
    for (const [code, name, status] of rows) {
      const Class = ENCLAVE_API_ERROR_CLASSES[code as keyof typeof ENCLAVE_API_ERROR_CLASSES]
      const error = new Class('m')
      expect(error.code).toBe(code)
      expect(error.name).toBe(name)
      if (status !== '—') expect(error.status).toBe(Number(status))
    }
  })

  it('the options table matches the defaults', () => {
    const table = Object.fromEntries(
      [...readme.matchAll(/^\|\s*`(\w+)`\s*\|\s*`([^`]+)`\s*\|/gm)].map((m) => [m[1], m[2]]),
    )
    for (const [name, value] of Object.entries(ENCLAVE_API_DEFAULTS)) expect(table[name]).toBe(String(value))
  })
})
