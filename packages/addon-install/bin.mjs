#!/usr/bin/env node
// The `install` script of the @enclave packages that carry an N-API addon: load a prebuild, or
// build the addon with node-gyp (through node-gyp-build), and never fail the install. Each of those
// packages works without its addon in part (dev mode, verification, …) and reports the missing
// addon, with the rebuild command, when a feature needs it; so a machine without a compiler or
// without Linux headers (macOS, Windows) still installs. What still works is read from the
// package's package.json: "enclave": { "addon": { "name": "…", "without": "…" } }.
// ENCLAVE_ADDON_INSTALL_VERBOSE=1 shows node-gyp's output.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

// npm, pnpm and yarn run install scripts in the installed package's folder.
const root = process.cwd()
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const addon = manifest.enclave?.addon ?? {}
const name = addon.name ?? 'the native addon'
const verbose = process.env.ENCLAVE_ADDON_INSTALL_VERBOSE === '1'

let reason
try {
  const bin = createRequire(import.meta.url).resolve('node-gyp-build/bin.js')
  const result = spawnSync(process.execPath, [bin], {
    cwd: root,
    stdio: verbose ? 'inherit' : 'pipe',
    encoding: 'utf8',
  })
  if (result.error) reason = result.error.message
  else if (result.status !== 0) reason = firstCause(result.stderr ?? '', result.status)
} catch (error) {
  reason = error.message.split('\n')[0]
}
if (reason) {
  const without = addon.without ? `; ${addon.without}` : ''
  process.stderr.write(
    `${manifest.name}: ${name} was not built (${reason})${without}. To build it: "npx node-gyp rebuild" in ${root} (ENCLAVE_ADDON_INSTALL_VERBOSE=1 shows the compiler's output)\n`,
  )
}
process.exit(0)

/** The line of node-gyp's output that says what went wrong. */
function firstCause(stderr, status) {
  const lines = stderr.split('\n').map((line) => line.trim())
  return (
    lines.find((line) => /error:/i.test(line) && !line.startsWith('gyp')) ??
    lines.find((line) => line.startsWith('gyp ERR! stack')) ??
    `node-gyp exited with code ${status}`
  )
}
