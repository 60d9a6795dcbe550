import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'
import { EifError, type EifErrorCode } from '../src/index.js'

// Every code in the union, spelled once; the type check fails if one is missing or extra.
const CODES = {
  ENCLAVE_EIF_INVALID_OPTIONS: true,
  ENCLAVE_EIF_IO: true,
  ENCLAVE_EIF_ABORTED: true,
  ENCLAVE_EIF_TRUNCATED: true,
  ENCLAVE_EIF_BAD_MAGIC: true,
  ENCLAVE_EIF_UNSUPPORTED_VERSION: true,
  ENCLAVE_EIF_BAD_HEADER: true,
  ENCLAVE_EIF_BAD_SECTION_COUNT: true,
  ENCLAVE_EIF_BAD_SECTION_TABLE: true,
  ENCLAVE_EIF_SECTION_OVERLAP: true,
  ENCLAVE_EIF_TRAILING_DATA: true,
  ENCLAVE_EIF_BAD_SECTION_HEADER: true,
  ENCLAVE_EIF_BAD_SECTION_ORDER: true,
  ENCLAVE_EIF_CRC_MISMATCH: true,
  ENCLAVE_EIF_BAD_METADATA: true,
  ENCLAVE_EIF_BAD_SIGNATURE_SECTION: true,
  ENCLAVE_EIF_BAD_CERTIFICATE: true,
  ENCLAVE_EIF_BAD_KEY: true,
  ENCLAVE_EIF_SIGNER_FAILED: true,
  ENCLAVE_EIF_SIZE_MISMATCH: true,
  ENCLAVE_EIF_WRITER_STATE: true,
} satisfies Record<EifErrorCode, true>

function readmeTable(): Array<{ code: string; className: string }> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const section = readme.split('## Errors')[1]!
  return [...section.matchAll(/^\|\s*`(ENCLAVE_EIF_[A-Z_]+)`\s*\|\s*`(\w+)`\s*\|/gm)].map((m) => ({
    code: m[1]!,
    className: m[2]!,
  }))
}

function exportedErrorClasses(): Array<new (...args: never[]) => EifError> {
  return (Object.values(api) as unknown[]).filter(
    (v): v is new (...args: never[]) => EifError =>
      typeof v === 'function' && (v as { prototype: unknown }).prototype instanceof EifError,
  )
}

function instantiate(cls: new (...args: never[]) => EifError): EifError {
  const ctor = cls as unknown as new (...args: unknown[]) => EifError
  return cls.name === 'EifCrcMismatchError' ? new ctor(1, 2) : new ctor('message')
}

describe('error codes', () => {
  it('the README table, the code union and the exported classes agree', () => {
    const table = readmeTable()
    expect(table.map((r) => r.code).sort()).toEqual(Object.keys(CODES).sort())
    const classes = exportedErrorClasses()
    expect(classes.map((c) => c.name).sort()).toEqual(table.map((r) => r.className).sort())
    for (const row of table) {
      const cls = classes.find((c) => c.name === row.className)!
      const err = instantiate(cls)
      expect(err.code).toBe(row.code)
      expect(err.name).toBe(row.className)
      expect(err).toBeInstanceOf(EifError)
      expect(err).toBeInstanceOf(Error)
    }
  })

  it('each class has its own code', () => {
    const codes = exportedErrorClasses().map((c) => instantiate(c).code)
    expect(new Set(codes).size).toBe(codes.length)
  })

  it('keeps cause and location', () => {
    const cause = new Error('disk')
    const err = new api.EifTruncatedError('cut', { offset: 7, sectionIndex: 2, cause })
    expect(err).toMatchObject({ offset: 7, sectionIndex: 2, cause })
  })
})
