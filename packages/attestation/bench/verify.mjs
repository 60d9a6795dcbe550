#!/usr/bin/env node
/**
 * Verifications per second over the real shared documents, side by side in one run:
 *   - @enclave/attestation, one verifier (chain cache warm: the normal server case)
 *   - @enclave/attestation, a new verifier per document (no cache: the cold case)
 *   - @0xsequence/tee-verifier 0.1.2 (cbor2 + pkijs + WebCrypto): signature + chain + root fingerprint
 * Each verification checks the document at a time inside its leaf's window. Bounded in time.
 * Run after `pnpm --filter @enclave/attestation build`. BENCH_SECONDS sets the time per contender.
 */

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  AWS_NITRO_ROOT_G1_SHA256,
  createAttestationVerifier,
  parseAttestationDocument,
} from '../dist/index.js'

// tee-verifier reads WebCrypto from `window.crypto` (it targets browsers); Node has the same API.
globalThis.window ??= globalThis
const { SignedAttestation } = await import('@0xsequence/tee-verifier')

const FIXTURES = fileURLToPath(new URL('../test/fixtures/', import.meta.url))
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3)

const files = [
  ['evervault/valid-attestation-doc-bytes', false],
  ['evervault/debug-mode-attestation-doc-bytes', false],
  ['evervault/valid-attestation-doc-base64', true],
  ['evervault/non-debug-cert-containing-attestation-document-18-1-23.pem.cose', false],
  ['evervault/debug-mode-cert-containing-attestation-doc-18-1-23.pem.cose', false],
  ['nostrband/nostrband_i-0ffff615a409a72d7_2025-04-01.b64', true],
  ['0xsequence/0xsequence_tee-verifier_i-01721714461f7afa6_2025-04-04.b64', true],
]
const docs = files.map(([path, b64]) => {
  const raw = readFileSync(FIXTURES + path)
  const bytes = new Uint8Array(b64 ? Buffer.from(raw.toString('utf8').trim(), 'base64') : raw)
  const at = parseAttestationDocument(bytes).document.timestamp + 1000
  return { name: path, bytes, base64: Buffer.from(bytes).toString('base64'), at, date: new Date(at) }
})

const warm = createAttestationVerifier({ allowDebug: true })
const contenders = {
  '@enclave/attestation (cached chain)': (d) => {
    if (!warm.verify(d.bytes, { at: d.at }).ok) throw new Error(`rejected ${d.name}`)
  },
  '@enclave/attestation (no cache)': (d) => {
    if (!createAttestationVerifier({ allowDebug: true, cacheSize: 0 }).verify(d.bytes, { at: d.at }).ok) {
      throw new Error(`rejected ${d.name}`)
    }
  },
  '@0xsequence/tee-verifier 0.1.2': async (d) => {
    const att = SignedAttestation.fromDocument(d.base64)
    const ok =
      (await att.verifySignature()) &&
      (await att.verifyRootOfTrust(d.date)) &&
      (await att.rootCertFingerprint()).replace(/:/g, '').toLowerCase() === AWS_NITRO_ROOT_G1_SHA256
    if (!ok) throw new Error(`tee-verifier rejected ${d.name}`)
  },
}

async function run(name, fn) {
  // warm-up (JIT, caches), then timed samples
  for (let i = 0; i < 3 * docs.length; i++) await fn(docs[i % docs.length])
  const samples = []
  const deadline = performance.now() + SECONDS * 1000
  let i = 0
  while (performance.now() < deadline && samples.length < 1_000_000) {
    const d = docs[i++ % docs.length]
    const t0 = performance.now()
    await fn(d)
    samples.push(performance.now() - t0)
  }
  samples.sort((a, b) => a - b)
  const total = samples.reduce((s, x) => s + x, 0)
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]
  return {
    name,
    n: samples.length,
    perSec: (samples.length / total) * 1000,
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
  }
}

const results = []
for (const [name, fn] of Object.entries(contenders)) {
  try {
    results.push(await run(name, fn))
  } catch (err) {
    results.push({ name, error: err.message })
  }
}
const base = results.find((r) => r.name.startsWith('@0xsequence') && !r.error)
const fmt = (x) => x.toFixed(3)
console.log(
  `attestation verify: ${docs.length} real documents, ${SECONDS} s per contender, node ${process.version}`,
)
console.log('| contender | verifications | per second | p50 ms | p90 ms | p99 ms | vs tee-verifier |')
console.log('|---|---|---|---|---|---|---|')
for (const r of results) {
  if (r.error) {
    console.log(`| ${r.name} | failed: ${r.error} | | | | | |`)
    continue
  }
  const ratio = base ? `${(r.perSec / base.perSec).toFixed(1)}×` : 'n/a'
  console.log(
    `| ${r.name} | ${r.n} | ${r.perSec.toFixed(0)} | ${fmt(r.p50)} | ${fmt(r.p90)} | ${fmt(r.p99)} | ${ratio} |`,
  )
}
