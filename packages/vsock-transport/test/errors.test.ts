import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'
import { ERROR_CLASSES, TransportError, type TransportErrorCode } from '../src/index.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const table = [...readme.matchAll(/^\| `(ENCLAVE_VSOCK_[A-Z_]+)`\s*\| `([A-Za-z]+)`/gm)].map((m) => ({
  code: m[1]!,
  className: m[2]!,
}))

describe('error codes', () => {
  it('the README table, ERROR_CLASSES and the exported classes agree', () => {
    expect(table.length).toBeGreaterThan(0)
    expect(table.map((row) => row.code).sort()).toEqual(Object.keys(ERROR_CLASSES).sort())
    for (const { code, className } of table) {
      const Class = ERROR_CLASSES[code as TransportErrorCode]
      expect(Class.name, code).toBe(className)
      expect((api as Record<string, unknown>)[className], `${className} is exported`).toBe(Class)
      const err = new Class('message')
      expect(err).toBeInstanceOf(TransportError)
      expect(err).toBeInstanceOf(Error)
      expect(err.code).toBe(code)
      expect(err.name).toBe(className)
    }
  })

  it('codes are unique and follow ENCLAVE_VSOCK_<WHAT>', () => {
    const codes = Object.keys(ERROR_CLASSES)
    expect(new Set(codes).size).toBe(codes.length)
    for (const code of codes) expect(code).toMatch(/^ENCLAVE_VSOCK_[A-Z_]+$/)
  })

  it('keeps the cause, the errno name and the address', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
    const err = new api.ConnectionRefusedError('nothing listens', {
      cause,
      systemCode: 'ECONNREFUSED',
      address: 'tcp://127.0.0.1:1',
    })
    expect(err.cause).toBe(cause)
    expect(err.systemCode).toBe('ECONNREFUSED')
    expect(err.address).toBe('tcp://127.0.0.1:1')
  })
})
