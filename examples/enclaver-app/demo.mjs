// pnpm start: runs server.mjs under `enclaver run --simulate`, waits for it to answer, fetches an
// attestation and checks that it carries the EIF's PCR0. With no EIF given (`node demo.mjs
// app.eif` to use yours), a small placeholder EIF is written only for its measurements.
import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAttestationDocument } from '@enclave/attestation'
import { describeEif, writeEif } from '@enclave/eif'

const here = dirname(fileURLToPath(import.meta.url))
const enclaver = join(
  dirname(createRequire(import.meta.url).resolve('@enclave/enclaver-app/package.json')),
  'dist/main.js',
)
let eif = process.argv[2]
if (!eif) {
  const dir = mkdtempSync(join(tmpdir(), 'enclaver-app-'))
  chmodSync(dir, 0o755)
  eif = join(dir, 'placeholder.eif')
  await writeEif(eif, {
    kernel: 'placeholder kernel',
    cmdline: 'console=ttyS0',
    ramdisks: ['bootstrap', 'app'],
  })
}
const { PCR0 } = (await describeEif(eif)).Measurements

const started = performance.now()
const run = spawn(
  process.execPath,
  [
    enclaver,
    'run',
    '--simulate',
    '--eif',
    eif,
    '--manifest',
    join(here, 'enclaver.yaml'),
    '--',
    process.execPath,
    join(here, 'server.mjs'),
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
)
let answered = false
for (let i = 0; i < 200 && !answered; i++) {
  try {
    const res = await fetch('http://127.0.0.1:8000/')
    answered = res.ok
  } catch {
    await new Promise((r) => setTimeout(r, 100))
  }
}
if (!answered) {
  run.kill('SIGTERM')
  throw new Error('the app did not answer within 20 s')
}
const ready = performance.now() - started
const nonce = 'c0ffee'
const doc = Buffer.from(
  await (await fetch(`http://127.0.0.1:8000/attestation?nonce=${nonce}`)).text(),
  'base64',
)
const parsed = parseAttestationDocument(doc)
const pcr0 = Buffer.from(parsed.document.pcrs.get(0)).toString('hex')
console.log(
  `answered after ${ready.toFixed(0)} ms; attestation PCR0 ${pcr0 === PCR0 ? 'matches' : 'DIFFERS FROM'} the EIF's`,
)
run.kill('SIGINT')
const code = await new Promise((r) => run.once('exit', r))
console.log(`enclaver run exited with ${code} (109 = interrupted)`)
process.exitCode = pcr0 === PCR0 && code === 109 ? 0 : 1
