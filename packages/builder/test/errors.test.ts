import { readFileSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import * as api from '../src/index.js'
import { PACKAGE_VERSION } from '../src/version.js'

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const SRC = readFileSync(new URL('../src/errors.ts', import.meta.url), 'utf8')

describe('error codes', () => {
  test('the README table, the BuilderErrorCode union and the classes agree', () => {
    const inReadme = [...README.matchAll(/^\| `(ENCLAVE_BUILDER_[A-Z_]+)`\s*\|/gm)].map((m) => m[1]).sort()
    const union = SRC.slice(SRC.indexOf('export type BuilderErrorCode'), SRC.indexOf('/** Base class'))
    const inUnion = [...union.matchAll(/'(ENCLAVE_BUILDER_[A-Z_]+)'/g)].map((m) => m[1]).sort()
    const classes = Object.values(api).filter(
      (v): v is typeof api.BuilderError => typeof v === 'function' && v.prototype instanceof api.BuilderError,
    )
    const inClasses = [...SRC.matchAll(/super\(\s*'(ENCLAVE_BUILDER_[A-Z_]+)'/g)].map((m) => m[1]).sort()
    expect(inReadme).toEqual(inUnion)
    expect(inClasses).toEqual(inUnion)
    expect(new Set(inClasses).size).toBe(inClasses.length)
    // Every class is exported.
    expect(classes.length).toBe(inClasses.length)
  })

  test('errors carry name, code and cause', () => {
    const cause = new Error('boom')
    const e = new api.EngineUnavailableError('unix:///x.sock', cause)
    expect(e).toBeInstanceOf(api.BuilderError)
    expect(e.name).toBe('EngineUnavailableError')
    expect(e.code).toBe('ENCLAVE_BUILDER_ENGINE_UNAVAILABLE')
    expect(e.cause).toBe(cause)
    expect(e.message).toMatch(/DOCKER_HOST/)
  })
})

describe('version', () => {
  test('PACKAGE_VERSION (the EIF metadata BuildToolVersion) is package.json version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
    expect(PACKAGE_VERSION).toBe(pkg.version)
  })
})
