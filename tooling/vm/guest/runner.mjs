// @ts-check
// Runs inside the guest (plain Node, no dependencies): each suite in its own process, one after
// the other (they share the loopback CID and the 2 vCPUs), with a time limit. The suite's output
// is echoed with a `[suite]` prefix; results are the only lines that start with the marker.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

const MARKER = 'VMTEST'

/**
 * @typedef {{ name: string, file: string, cwd: string }} Suite
 * @typedef {{ suiteTimeoutMs: number, suites: Suite[] }} Manifest
 */

/** @param {string} line */
const say = (line) => process.stdout.write(`${line}\n`)

/** @param {string} text one line: the protocol has no room for newlines */
const oneLine = (text) => text.replace(/\s+/g, ' ').trim()

/**
 * @param {Suite} suite @param {number} timeoutMs
 * @returns {Promise<{ ok: boolean, detail: string }>}
 */
function runSuite(suite, timeoutMs) {
  return new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(process.execPath, [suite.file], {
      cwd: suite.cwd,
      env: { ...process.env, ENCLAVE_VM_GUEST: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    // The reason shown for a failure: the first failed test (TAP `not ok`, or ✖ from node:test's
    // spec reporter, Node 24's default), else the last line.
    /** @type {string | undefined} */
    let firstNotOk
    /** @type {string | undefined} */
    let lastLine
    /** @param {NodeJS.ReadableStream} stream */
    const echo = (stream) => {
      let pending = ''
      stream.setEncoding('utf8')
      stream.on('data', (chunk) => {
        pending += chunk
        const lines = pending.split('\n')
        pending = lines.pop() ?? ''
        for (const line of lines) emit(line)
      })
      stream.on('end', () => {
        if (pending) emit(pending)
      })
    }
    /** @param {string} line */
    const emit = (line) => {
      say(`[${suite.name}] ${line}`)
      if (line.trim() === '') return
      lastLine = line
      if (firstNotOk === undefined && /^\s*(not ok\b|✖)/.test(line)) firstNotOk = line
    }
    echo(child.stdout)
    echo(child.stderr)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    const seconds = () => `${((Date.now() - started) / 1000).toFixed(1)} s`
    child.on('error', (error) => {
      clearTimeout(timer)
      resolve({ ok: false, detail: `could not start: ${error.message}` })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (timedOut) {
        // "Printed its summary, then never exited" and "stuck halfway" look alike without this.
        const last = lastLine === undefined ? '' : `; last output: ${oneLine(lastLine).slice(0, 200)}`
        resolve({ ok: false, detail: `timed out after ${timeoutMs / 1000} s${last}` })
      } else if (code === 0) resolve({ ok: true, detail: `in ${seconds()}` })
      else {
        const last = firstNotOk ?? lastLine
        resolve({
          ok: false,
          detail: `${code === null ? `killed by ${signal}` : `exit code ${code}`} after ${seconds()}${
            last ? `: ${oneLine(last).slice(0, 200)}` : ''
          }`,
        })
      }
    })
  })
}

async function main() {
  /** @type {Manifest} */
  const manifest = JSON.parse(readFileSync(process.argv[2] ?? '/vmtest/suites.json', 'utf8'))
  say(`${MARKER} info node ${process.version}, ${manifest.suites.length} suite(s)`)
  let passed = 0
  let failed = 0
  for (const suite of manifest.suites) {
    say(`${MARKER} info running ${suite.name}`)
    const result = await runSuite(suite, manifest.suiteTimeoutMs)
    if (result.ok) passed++
    else failed++
    say(`${MARKER} ${result.ok ? 'ok' : 'fail'} ${suite.name} ${oneLine(result.detail)}`)
  }
  say(`${MARKER} summary ${passed} passed, ${failed} failed`)
}

main().catch((error) => {
  say(`${MARKER} info runner crashed: ${oneLine(String(error?.stack ?? error))}`)
  process.exitCode = 1
})
