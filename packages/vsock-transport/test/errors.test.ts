import { readFileSync } from 'node:fs'
import { constants } from 'node:os'
import { describe, expect, it } from 'vitest'
import { connectErrorFrom } from '../src/errors.js'
import * as api from '../src/index.js'
import { ERROR_CLASSES, TransportError, type TransportErrorCode } from '../src/index.js'
import { systemErrorFor } from '../src/native.js'

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

  // The addon reports a failed connect as -errno; vsock.ts turns it into a system error and
  // guardedAttempt into the typed error. Unit level: no connect is dialled from this machine.
  it.each([
    ['ENODEV', 'UnreachableError', 'ENCLAVE_VSOCK_UNREACHABLE'],
    ['EHOSTUNREACH', 'UnreachableError', 'ENCLAVE_VSOCK_UNREACHABLE'],
    ['ECONNREFUSED', 'ConnectionRefusedError', 'ENCLAVE_VSOCK_CONNECTION_REFUSED'],
    ['ECONNRESET', 'ConnectionRefusedError', 'ENCLAVE_VSOCK_CONNECTION_REFUSED'],
    ['ETIMEDOUT', 'ConnectTimeoutError', 'ENCLAVE_VSOCK_CONNECT_TIMEOUT'],
    ['EPERM', 'ConnectError', 'ENCLAVE_VSOCK_CONNECT_FAILED'],
  ] as const)('a connect failing with -%s becomes %s', (errno, name, code) => {
    const cause = systemErrorFor(-constants.errno[errno], 'connect')
    expect(cause).toMatchObject({ code: errno, syscall: 'connect', errno: -constants.errno[errno] })
    const err = connectErrorFrom(cause, 'vsock://7:5000')
    expect(err).toBeInstanceOf(api.TransportError)
    expect(err).toMatchObject({ name, code, systemCode: errno, address: 'vsock://7:5000' })
    expect(err.cause).toBe(cause)
    expect(err.message).toContain('vsock://7:5000')
  })
})
