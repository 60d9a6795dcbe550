#!/usr/bin/env node
// `pnpm bench [name…]`: runs the side-by-side benchmarks one after another (all by default) on the
// built packages. Each prints its own table with ratios against its competitors (socat, scp, ssh,
// direct connections, GNU tools, @0xsequence/tee-verifier). Never part of the test suite.
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const benches = {
  'pf-proxy': ['bench/pf-proxy.mjs'],
  bridge: ['packages/bridge-host/bench/bridge.mjs'],
  pipeline: ['packages/pipeline-cli/bench/pipeline-vs-scp.mjs'],
  attestation: ['packages/attestation/bench/verify.mjs'],
  eif: ['packages/eif/bench/stream.mjs'],
  builder: ['packages/builder/bench/build.mjs', '--rss-check'],
  supervisor: ['packages/supervisor/bench/simulate.mjs'],
  egress: ['packages/egress/bench/network.mjs'],
  transport: ['packages/vsock-transport/bench/throughput.mjs'],
  protocol: ['packages/protocol/bench/decode.mjs'],
}

const wanted = process.argv.slice(2)
const unknown = wanted.filter((name) => !(name in benches))
if (unknown.length > 0) {
  console.error(`unknown benchmark: ${unknown.join(', ')}; choose from ${Object.keys(benches).join(', ')}`)
  process.exit(2)
}
let failed = 0
for (const name of wanted.length > 0 ? wanted : Object.keys(benches)) {
  const [script, ...args] = benches[name]
  console.log(`\n### bench ${name}: node ${script} ${args.join(' ')}`)
  const result = spawnSync(process.execPath, [resolve(root, script), ...args], {
    stdio: 'inherit',
    cwd: root,
  })
  if (result.status !== 0) {
    failed += 1
    console.error(`### bench ${name} failed (exit ${result.status ?? result.signal})`)
  }
}
process.exit(failed > 0 ? 1 : 0)
