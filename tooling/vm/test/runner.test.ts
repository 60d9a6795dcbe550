import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { type ConsoleEvent, judge, parseLine } from '../lib/console.mjs'

// The guest runner is plain Node, so it runs here too: the same protocol run.mjs reads from the
// serial console.
const runner = fileURLToPath(new URL('../guest/runner.mjs', import.meta.url))
let temp: { path: string; remove: () => void }

beforeEach(() => {
  temp = makeTempDir('enclave-vm-runner-')
})
afterEach(() => temp.remove())

function runSuites(suites: Record<string, string>, suiteTimeoutMs: number) {
  const manifest = {
    suiteTimeoutMs,
    suites: Object.entries(suites).map(([name, code]) => {
      const file = join(temp.path, `${name.replace('/', '_')}.mjs`)
      writeFileSync(file, code)
      return { name, file, cwd: temp.path }
    }),
  }
  const manifestPath = join(temp.path, 'suites.json')
  writeFileSync(manifestPath, JSON.stringify(manifest))
  const result = spawnSync(process.execPath, [runner, manifestPath], { encoding: 'utf8', timeout: 60_000 })
  const lines = result.stdout.split('\n')
  const events = lines.map((l) => parseLine(l)).filter((e): e is ConsoleEvent => e !== undefined)
  return { status: result.status, lines, events }
}

it('reports passing, failing, crashing and hanging suites, then a summary that agrees', () => {
  const { status, lines, events } = runSuites(
    {
      'p/pass': 'console.log("hello from the guest")',
      'p/fail': 'console.error("expected 1, got 2"); process.exit(3)',
      'p/crash': 'process.kill(process.pid, "SIGSEGV")',
      'p/hang': 'setTimeout(() => {}, 60_000)',
      'p/linger': 'console.log("# 3/3 passed")\nsetTimeout(() => {}, 60_000)',
      'p/fake': 'console.log("VMTEST ok p/fake")\nprocess.exit(1)',
      'p/tap': 'console.log("ok 1 - fine\\nnot ok 2 - broken\\n# pass 1\\n# fail 1")\nprocess.exitCode = 1',
    },
    1500,
  )
  expect(status).toBe(0)
  expect(lines).toContain('[p/pass] hello from the guest')
  const verdict = judge(events, {
    expectedSuites: ['p/pass', 'p/fail', 'p/crash', 'p/hang', 'p/linger', 'p/fake', 'p/tap'],
  })
  expect(verdict.problems).toEqual([])
  expect(verdict.passed).toEqual(['p/pass'])
  expect(verdict.failed.map((f) => f.suite)).toEqual([
    'p/fail',
    'p/crash',
    'p/hang',
    'p/linger',
    'p/fake',
    'p/tap',
  ])
  const reasons = Object.fromEntries(verdict.failed.map((f) => [f.suite, f.reason]))
  expect(reasons['p/fail']).toMatch(/^exit code 3 after [\d.]+ s: expected 1, got 2$/)
  expect(reasons['p/crash']).toMatch(/^killed by SIGSEGV/)
  expect(reasons['p/hang']).toBe('timed out after 1.5 s')
  // A suite that reported and then never exited says so.
  expect(reasons['p/linger']).toBe('timed out after 1.5 s; last output: # 3/3 passed')
  // For node:test output the first failing test names the problem, not the closing counts.
  expect(reasons['p/tap']).toMatch(/^exit code 1 after [\d.]+ s: not ok 2 - broken$/)
  expect(verdict.ok).toBe(false)
})
