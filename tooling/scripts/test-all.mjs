#!/usr/bin/env node
// The whole test suite, in the order a failure is cheapest to find: lint, types, build, unit and
// integration tests (vitest), the packed-tarball check, then real AF_VSOCK inside a QEMU guest.
// Ends with one plain line, "N passed, N failed", summing every step that counts tests.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1' }
const totals = { passed: 0, failed: 0, skipped: 0 }
const failedSteps = []

function step(name, command, args, { counts } = {}) {
  console.log(`\n=== ${name}: ${command} ${args.join(' ')} (node ${process.version})`)
  const started = Date.now()
  const result = spawnSync(command, args, { stdio: 'inherit', env })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  const ok = result.status === 0
  console.log(`=== ${name}: ${ok ? 'ok' : `FAILED (exit ${result.status ?? result.signal})`} in ${seconds} s`)
  if (counts) counts()
  else if (!ok) totals.failed += 1 // a failed step with no test count still counts as a failure
  if (!ok) failedSteps.push(name)
  return ok
}

step('lint', 'pnpm', ['lint'])
step('typecheck', 'pnpm', ['typecheck'])
if (step('build', 'pnpm', ['build'])) {
  const reportDir = mkdtempSync(join(tmpdir(), 'enclave-vitest-'))
  const report = join(reportDir, 'report.json')
  step(
    'vitest',
    'pnpm',
    ['exec', 'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`],
    {
      counts: () => {
        try {
          const json = JSON.parse(readFileSync(report, 'utf8'))
          totals.passed += json.numPassedTests
          totals.failed += json.numFailedTests
          totals.skipped += json.numPendingTests + json.numTodoTests
        } catch {
          totals.failed += 1
        }
        rmSync(reportDir, { recursive: true, force: true })
      },
    },
  )
  if (step('pack', 'pnpm', ['test:pack'])) totals.passed += 1
  if (step('vm', 'pnpm', ['test:vm'])) totals.passed += 1
}

console.log(`\nsteps failed: ${failedSteps.length ? failedSteps.join(', ') : 'none'}`)
console.log(
  `${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`,
)
process.exit(failedSteps.length ? 1 : 0)
