import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as kms from '../src/index.js'
import { KMS_ERROR_CLASSES, KmsError } from '../src/index.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('error table, exported code list and classes agree', () => {
    const rows = [...readme.matchAll(/^\|\s*`(ENCLAVE_KMS_[A-Z0-9_]+)`\s*\|\s*`(\w+)`\s*\|/gm)].map((m) => [
      m[1],
      m[2],
    ])
    expect(rows.length).toBeGreaterThan(0)
    expect(rows).toEqual(Object.entries(KMS_ERROR_CLASSES).map(([code, Class]) => [code, Class.name]))
    const exported = Object.entries(kms).filter(
      ([, value]) => typeof value === 'function' && value.prototype instanceof KmsError,
    )
    expect(exported.map(([name]) => name).sort()).toEqual(rows.map(([, name]) => name).sort())
    for (const [code, Class] of Object.entries(KMS_ERROR_CLASSES)) {
      const error = new Class('m')
      expect(error).toBeInstanceOf(KmsError)
      expect(error.code).toBe(code)
      expect(error.name).toBe(Class.name)
      expect(error.message).toBe('m')
    }
  })

  it('the proxy option table names every option of startKmsProxy', () => {
    const section = readme.slice(
      readme.indexOf('## startKmsProxy options'),
      readme.indexOf('## Development endpoint'),
    )
    const names = [...section.matchAll(/^\|\s*`([a-z]\w*)`\s*\|\s*[^|]+\|\s*[^|]+\|$/gm)].map((m) => m[1])
    const source = readFileSync(new URL('../src/proxy.ts', import.meta.url), 'utf8')
    const block = /export interface KmsProxyOptions \{([\s\S]*?)\n\}/.exec(source)?.[1] ?? ''
    const declared = [...block.matchAll(/^\s{2}(\w+)\??:/gm)].map((m) => m[1])
    expect(declared.length).toBeGreaterThan(5)
    expect(names).toEqual(declared)
  })

  it('the dev endpoint option table names every option of startDevKmsEndpoint', () => {
    const section = readme.slice(readme.indexOf('## Development endpoint'), readme.indexOf('## Errors'))
    const names = [...section.matchAll(/^\|\s*(`[a-z]\w*`(?:, `[a-z]\w*`)*)\s*\|/gm)].flatMap((m) =>
      m[1]!.split(', ').map((n) => n.replaceAll('`', '')),
    )
    const source = readFileSync(new URL('../src/dev-endpoint.ts', import.meta.url), 'utf8')
    const block = /export interface DevKmsOptions \{([\s\S]*?)\n\}/.exec(source)?.[1] ?? ''
    const declared = [...block.matchAll(/^\s{2}readonly (\w+)\??:/gm)].map((m) => m[1])
    expect(declared.length).toBeGreaterThan(5)
    expect(names).toEqual(declared)
  })
})
