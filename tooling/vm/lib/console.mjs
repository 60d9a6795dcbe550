// @ts-check
// The line protocol between the guest runner and run.mjs. The guest prints, on the serial console:
//   VMTEST info <text>
//   VMTEST ok <suite> <detail>
//   VMTEST fail <suite> <reason>
//   VMTEST summary <N> passed, <M> failed
// Every other console line (kernel messages, suite output) is only echoed. A line counts only when
// the marker starts it, so a suite cannot fake a result by printing the marker: the runner prefixes
// suite output with the suite's name.

/** @typedef {{ kind: 'info', text: string }} InfoEvent */
/** @typedef {{ kind: 'ok', suite: string, detail: string }} OkEvent */
/** @typedef {{ kind: 'fail', suite: string, reason: string }} FailEvent */
/** @typedef {{ kind: 'summary', passed: number, failed: number }} SummaryEvent */
/** @typedef {InfoEvent | OkEvent | FailEvent | SummaryEvent} ConsoleEvent */

export const MARKER = 'VMTEST'

// Serial consoles end lines with \r\n and QEMU may emit terminal escapes; neither is content.
// biome-ignore lint/suspicious/noControlCharactersInRegex: escape sequences are what this removes
const ESCAPES = /\u001b\[[0-9;?]*[A-Za-z]|\u001bc|\r/g

/** @param {string} raw */
export function cleanLine(raw) {
  return raw.replace(ESCAPES, '')
}

/**
 * Parses one console line; undefined when it is not a protocol line.
 * @param {string} raw
 * @returns {ConsoleEvent | undefined}
 */
export function parseLine(raw) {
  const line = cleanLine(raw).trimEnd()
  if (!line.startsWith(`${MARKER} `)) return undefined
  const rest = line.slice(MARKER.length + 1)
  const space = rest.indexOf(' ')
  const kind = space === -1 ? rest : rest.slice(0, space)
  const args = space === -1 ? '' : rest.slice(space + 1).trim()
  switch (kind) {
    case 'info':
      return { kind, text: args }
    case 'ok':
    case 'fail': {
      if (args === '') return undefined
      const gap = args.indexOf(' ')
      const suite = gap === -1 ? args : args.slice(0, gap)
      const text = gap === -1 ? '' : args.slice(gap + 1).trim()
      return kind === 'ok' ? { kind, suite, detail: text } : { kind, suite, reason: text }
    }
    case 'summary': {
      const match = /^(\d+) passed, (\d+) failed$/.exec(args)
      if (!match) return undefined
      return { kind, passed: Number(match[1]), failed: Number(match[2]) }
    }
    default:
      return undefined
  }
}

/** Splits a byte stream into lines; feed chunks, get complete lines back. */
export function createLineSplitter() {
  let pending = ''
  return {
    /** @param {string} chunk @returns {string[]} */
    push(chunk) {
      pending += chunk
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      // A console that never sends a newline must not grow this buffer without bound.
      if (pending.length > 64 * 1024) {
        lines.push(pending)
        pending = ''
      }
      return lines
    },
    /** @returns {string[]} */
    end() {
      const rest = pending
      pending = ''
      return rest === '' ? [] : [rest]
    },
  }
}

/**
 * @typedef {object} Verdict
 * @property {boolean} ok           true only for a complete run with no failure
 * @property {string[]} passed      suites that passed, in order
 * @property {{ suite: string, reason: string }[]} failed
 * @property {string[]} problems    why the run as a whole is not trusted (missing summary, ...)
 */

/**
 * Judges a run from its events. A run passes only if the guest reported a summary, the summary
 * agrees with the per-suite lines, at least one suite ran, and none failed; a guest that died
 * halfway (kernel panic, timeout) therefore never passes.
 * @param {ConsoleEvent[]} events
 * @param {{ expectedSuites?: string[] }} [options]
 * @returns {Verdict}
 */
export function judge(events, options = {}) {
  /** @type {string[]} */
  const passed = []
  /** @type {{ suite: string, reason: string }[]} */
  const failed = []
  /** @type {SummaryEvent | undefined} */
  let summary
  for (const event of events) {
    if (event.kind === 'ok') passed.push(event.suite)
    else if (event.kind === 'fail') failed.push({ suite: event.suite, reason: event.reason })
    else if (event.kind === 'summary') summary = event
  }
  /** @type {string[]} */
  const problems = []
  if (!summary) problems.push('the guest never printed its summary line')
  else if (summary.passed !== passed.length || summary.failed !== failed.length) {
    problems.push(
      `the summary says ${summary.passed} passed, ${summary.failed} failed but the console showed ` +
        `${passed.length} passed, ${failed.length} failed`,
    )
  }
  if (passed.length + failed.length === 0) problems.push('no suite ran')
  if (options.expectedSuites) {
    const seen = new Set([...passed, ...failed.map((f) => f.suite)])
    const missing = options.expectedSuites.filter((name) => !seen.has(name))
    if (missing.length > 0) problems.push(`no result for: ${missing.join(', ')}`)
  }
  return { ok: problems.length === 0 && failed.length === 0, passed, failed, problems }
}

/**
 * One verdict for several boots: every suite and problem of each, ok only if each is.
 * @param {Verdict[]} verdicts
 * @returns {Verdict}
 */
export function mergeVerdicts(verdicts) {
  return {
    ok: verdicts.length > 0 && verdicts.every((v) => v.ok),
    passed: verdicts.flatMap((v) => v.passed),
    failed: verdicts.flatMap((v) => v.failed),
    problems: verdicts.flatMap((v) => v.problems),
  }
}
