import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

function tableColumn(heading: string, pattern: RegExp): string[] {
  const section = readme.split(`## ${heading}`)[1]?.split('\n## ')[0] ?? ''
  return [...section.matchAll(pattern)].map((m) => m[1]!)
}

describe('error codes', () => {
  const classes = (Object.values(api) as unknown[]).filter(
    (v): v is new (...args: never[]) => api.AttestationError =>
      typeof v === 'function' && v.prototype instanceof api.AttestationError,
  )

  it('every error class has a distinct code from the code list; the README table lists the same set', () => {
    const codes = classes
      .filter((C) => C !== api.NsmError)
      .map((C) => {
        const e =
          C === api.VerificationFailedError
            ? new api.VerificationFailedError([])
            : C === api.AttestedPeerError
              ? new api.AttestedPeerError([])
              : new (C as new (m: string) => api.AttestationError)('x')
        expect(e.name).toBe(C.name)
        return e.code
      })
    expect(new Set(codes).size).toBe(codes.length)
    expect([...codes].sort()).toEqual([...api.ATTESTATION_ERROR_CODES].sort())
    expect(tableColumn('Errors', /^\| `(ENCLAVE_ATTESTATION_[A-Z_]+)`/gm).sort()).toEqual(
      [...api.ATTESTATION_ERROR_CODES].sort(),
    )
  })

  it('every device error name maps to its class', () => {
    for (const name of api.NSM_ERROR_NAMES) {
      const e = api.nsmErrorFromName(name)
      expect(e).toBeInstanceOf(api.NsmError)
      expect(e.nsmError).toBe(name)
      expect(e.constructor.name).toBe(`Nsm${name === 'InternalError' ? 'Internal' : name}Error`)
    }
  })

  it('the README lists exactly the failure reasons', () => {
    const section = readme.split('## Failure reasons')[1]!.split('\n## ')[0]!
    const firstCells = section
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .map((l) => l.split('|')[1]!)
    const listed = firstCells.flatMap((cell) => [...cell.matchAll(/`([a-z-]+)`/g)].map((m) => m[1]!))
    expect(listed.sort()).toEqual([...api.FAILURE_REASONS].sort())
  })
})
