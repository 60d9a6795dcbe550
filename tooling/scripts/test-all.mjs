#!/usr/bin/env node
// The whole test suite, in the order a failure is cheapest to find: lint, types, build, unit and
// integration tests (vitest), the API reports and README examples against the built types, the
// packed-tarball check, then real AF_VSOCK inside a QEMU guest.
// Ends with one plain line, "N passed, N failed", summing every step that counts tests.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1' }
const totals = { passed: 0, failed: 0, skipped: 0 }
const failedSteps = []
/** Failed vitest tests as "file > test: first line of the error", repeated at the very end. */
const failedTests = []
/** Tests that failed once and passed on their retry. */
const flakyTests = []

/**
 * Runs one step under timeout(1), which signals the step's whole process group (pnpm, vitest and
 * its workers), so a hung step fails in bounded time, names itself and lets the others run.
 */
function step(name, command, args, { counts, extraEnv = {}, minutes = 10 } = {}) {
  console.log(`\n=== ${name}: ${command} ${args.join(' ')} (node ${process.version})`)
  const started = Date.now()
  const result = spawnSync('timeout', ['--kill-after=30', `${minutes}m`, command, ...args], {
    stdio: 'inherit',
    env: { ...env, ...extraEnv },
  })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  const ok = result.status === 0
  const why =
    result.status === 124 || result.status === 137
      ? `timed out after ${minutes} min`
      : `exit ${result.status ?? result.signal}`
  console.log(`=== ${name}: ${ok ? 'ok' : `FAILED (${why})`} in ${seconds} s`)
  if (counts) counts()
  else if (!ok) totals.failed += 1 // a failed step with no test count still counts as a failure
  if (!ok) failedSteps.push(name)
  return ok
}

/**
 * A vitest run whose tests count in the totals: one retry, and every test that needed it listed
 * in the summary as flaky (flaky-reporter.mjs).
 * @param {string} name @param {string[]} args @param {Record<string, string>} [extraEnv]
 * @param {number} [minutes] the step's time limit
 */
function vitest(name, args, extraEnv = {}, minutes = 25) {
  const reportDir = mkdtempSync(join(tmpdir(), 'enclave-vitest-'))
  const report = join(reportDir, 'report.json')
  const flakyReport = join(reportDir, 'flaky.txt')
  const reporter = join(import.meta.dirname, 'flaky-reporter.mjs')
  step(
    name,
    'pnpm',
    [
      'exec',
      'vitest',
      'run',
      '--retry=1',
      '--reporter=default',
      '--reporter=json',
      `--reporter=${reporter}`,
      `--outputFile.json=${report}`,
      ...args,
    ],
    {
      minutes,
      extraEnv: { ...extraEnv, ENCLAVE_FLAKY_REPORT: flakyReport },
      counts: () => {
        try {
          const json = JSON.parse(readFileSync(report, 'utf8'))
          totals.passed += json.numPassedTests
          totals.failed += json.numFailedTests
          totals.skipped += json.numPendingTests + json.numTodoTests
          const label = (line) => (name === 'vitest' ? line : `[${name}] ${line}`)
          failedTests.push(...describeFailures(json).map(label))
          if (existsSync(flakyReport))
            flakyTests.push(...readFileSync(flakyReport, 'utf8').trim().split('\n').map(label))
        } catch {
          totals.failed += 1
        }
        rmSync(reportDir, { recursive: true, force: true })
      },
    },
  )
}

step('lint', 'pnpm', ['lint'])
step('typecheck', 'pnpm', ['typecheck'], { minutes: 15 })
if (step('build', 'pnpm', ['build'], { minutes: 20 })) {
  vitest('vitest', [])
  // The forwarding engine's fallback (Node streams) must keep working where splice cannot apply.
  vitest(
    'vitest (stream relay)',
    ['--project', '@enclave/tunnel', '--project', '@enclave/pf-proxy'],
    { ENCLAVE_TUNNEL_KERNEL_RELAY: '0' },
    10,
  )
  if (step('api', 'pnpm', ['api:check'])) totals.passed += 1
  if (step('readme examples', 'pnpm', ['test:examples'])) totals.passed += 1
  if (step('pack', 'pnpm', ['test:pack'])) totals.passed += 1
  if (step('vm', 'pnpm', ['test:vm'], { minutes: 20 })) totals.passed += 1
}

if (flakyTests.length > 0) {
  console.log(`\nflaky tests (failed, then passed on retry; fix them):`)
  for (const line of flakyTests) console.log(`  ${line}`)
}
if (failedTests.length > 0) {
  console.log('\nfailed tests:')
  for (const line of failedTests) console.log(`  ${line}`)
}
console.log(`\nsteps failed: ${failedSteps.length ? failedSteps.join(', ') : 'none'}`)
console.log(
  `${totals.passed} passed, ${totals.failed} failed` +
    `${totals.skipped ? `, ${totals.skipped} skipped` : ''}${flakyTests.length ? `, ${flakyTests.length} flaky` : ''}`,
)
process.exit(failedSteps.length ? 1 : 0)

/**
 * The failed tests of a vitest JSON report (jest's shape), with each error's first lines, and any
 * file that failed without a test (an import or hook error).
 * @param {any} json
 */
function describeFailures(json) {
  const lines = []
  for (const file of json.testResults ?? []) {
    const name = relative(process.cwd(), file.name)
    const failed = (file.assertionResults ?? []).filter((test) => test.status === 'failed')
    for (const test of failed) {
      const message = (test.failureMessages ?? []).join('\n').split('\n').slice(0, 6).join('\n    ')
      lines.push(`${name} > ${test.fullName}\n    ${message}`)
    }
    if (failed.length === 0 && file.status === 'failed') {
      lines.push(
        `${name}: ${String(file.message ?? 'failed')
          .split('\n')
          .slice(0, 6)
          .join('\n    ')}`,
      )
    }
  }
  return lines
}
