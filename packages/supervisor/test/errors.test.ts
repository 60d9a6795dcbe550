import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as api from '../src/index.js'

describe('error codes', () => {
  it('the README table, the code list and the classes agree', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const rows = [...readme.matchAll(/^\| `(ENCLAVE_SUPERVISOR_[A-Z_]+)`\s*\| `(\w+)`\s*\|/gm)].map((m) => [
      m[1],
      m[2],
    ])
    expect(rows.map((r) => r[0]).sort()).toEqual([...api.SUPERVISOR_ERROR_CODES].sort())
    for (const [code, name] of rows) {
      const cls = api.ERROR_CLASSES[code as api.SupervisorErrorCode]
      expect(cls.name).toBe(name)
      expect((api as Record<string, unknown>)[name!]).toBe(cls)
      expect(cls.prototype).toBeInstanceOf(api.SupervisorError)
    }
  })

  it('NitroCliError extracts the error log nitro-cli names', () => {
    const err = new api.NitroCliError(
      'run-enclave',
      '[ E26 ] Insufficient memory\nIf you open a support ticket, please provide the error log found at "/var/log/nitro_enclaves/err.log"\n',
    )
    expect(err.errorLog).toBe('/var/log/nitro_enclaves/err.log')
    expect(err.code).toBe('ENCLAVE_SUPERVISOR_NITRO_CLI')
  })

  it('parses and checks expected PCRs', () => {
    const hex = 'ab'.repeat(48)
    expect(api.parseExpectedPcrs(`PCR0=${hex.toUpperCase()},pcr2=${hex}`)).toEqual({ PCR0: hex, PCR2: hex })
    expect(() => api.parseExpectedPcrs('PCR0=zz')).toThrow(api.InvalidOptionsError)
    expect(() => api.checkMeasurements({ PCR0: hex }, { PCR0: hex })).not.toThrow()
    expect(() => api.checkMeasurements({ PCR0: hex }, { PCR1: hex })).toThrow(api.PcrMismatchError)
  })
})
