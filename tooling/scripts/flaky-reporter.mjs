// A vitest reporter for test:all, which runs vitest with one retry: every test that failed and
// then passed on its retry is written to $ENCLAVE_FLAKY_REPORT (one "file > name: error" line
// each), so test:all prints it in its summary. A retry keeps one unlucky scheduling moment
// on a loaded CI machine from failing the run, and this keeps the flake visible to fix.
import { appendFileSync } from 'node:fs'
import { relative } from 'node:path'

export default class FlakyReporter {
  /** @param {import('vitest/node').TestCase} testCase */
  onTestCaseResult(testCase) {
    const target = process.env.ENCLAVE_FLAKY_REPORT
    if (!target || !testCase.diagnostic()?.flaky) return
    const file = relative(process.cwd(), testCase.module.moduleId)
    // Four lines keep what reproduces it: fast-check puts the seed and counterexample there.
    const error = (testCase.result().errors?.[0]?.message ?? '').split('\n').slice(0, 4).join(' | ')
    appendFileSync(target, `${file} > ${testCase.fullName}${error ? `: ${error}` : ''}\n`)
  }
}
