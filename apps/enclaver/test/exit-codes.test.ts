import { readFileSync } from 'node:fs'
import { expect, test } from 'vitest'
import { EXIT, exitCodeFor } from '../src/exit-codes.js'

test('the README exit-code table lists exactly the codes main can return', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('## Exit codes'))
  const documented = [...section.matchAll(/^\| (\d+)\s*\|/gm)].map((m) => Number(m[1])).sort((a, b) => a - b)
  expect(documented).toEqual(Object.values(EXIT).sort((a, b) => a - b))
})

test('error codes map to exit codes in one place', () => {
  expect(exitCodeFor({ code: 'ENCLAVE_BUILDER_MANIFEST_INVALID' })).toBe(3)
  expect(exitCodeFor({ code: 'ENCLAVE_BUILDER_ENGINE_UNAVAILABLE' })).toBe(5)
  expect(exitCodeFor({ code: 'ENCLAVE_EIF_BAD_MAGIC' })).toBe(7)
  expect(exitCodeFor({ code: 'ENCLAVE_SOMETHING_ELSE' })).toBe(1)
  expect(exitCodeFor(new Error('plain'))).toBe(1)
  expect(exitCodeFor(null)).toBe(1)
})
