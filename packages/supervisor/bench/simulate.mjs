// Benchmark: (1) time from `enclaver run --simulate` to the app answering HTTP, (2) odyn's own
// memory (RSS) and CPU while the app idles. Run after `pnpm build`:
//   node packages/supervisor/bench/simulate.mjs [runs=5]
// Prints samples, median and spread. Bounded: each run gives up after 20 s.
import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeEif } from '@enclave/eif'

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..')
const enclaver = join(root, 'apps/enclaver/dist/main.js')
const runs = Number(process.argv[2] ?? 5)
const dir = mkdtempSync(join(tmpdir(), 'odyn-bench-'))
chmodSync(dir, 0o755)
const eif = join(dir, 'bench.eif')
await writeEif(eif, { kernel: 'kernel', cmdline: 'console=ttyS0', ramdisks: ['a', 'b'] })
writeFileSync(join(dir, 'enclaver.yaml'), 'version: v1\nname: bench\ntarget: t\nsources:\n  app: a\n')
const port = 18_000 + (process.pid % 1000)
const app = `require('http').createServer((q,s)=>s.end('ok')).listen(${port},'127.0.0.1')`

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const stats = (name, xs, unit) =>
  console.log(
    `${name}: median ${median(xs).toFixed(1)} ${unit}, min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)} (${xs.map((x) => x.toFixed(0)).join(' ')})`,
  )

function start() {
  const child = spawn(
    process.execPath,
    [
      enclaver,
      'run',
      '--simulate',
      '--eif',
      eif,
      '--manifest',
      join(dir, 'enclaver.yaml'),
      '--',
      process.execPath,
      '-e',
      app,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
  let stderr = ''
  child.stderr.on('data', (c) => {
    stderr += c
  })
  return { child, odynPid: () => Number(/sim-(\d+)/.exec(stderr)?.[1] ?? 0) }
}

async function waitAnswer(deadline) {
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/`)).ok) return true
    } catch {}
    await new Promise((r) => setTimeout(r, 20))
  }
  return false
}

const stop = async (child) => {
  child.kill('SIGINT')
  await new Promise((r) => child.once('exit', r))
}

const ready = []
for (let i = 0; i < runs; i++) {
  const t0 = performance.now()
  const { child } = start()
  const ok = await waitAnswer(Date.now() + 20_000)
  if (ok) ready.push(performance.now() - t0)
  await stop(child)
}
stats('run --simulate → app answers', ready, 'ms')

// Idle: sample odyn's RSS and CPU time over 5 s while the app waits.
const { child, odynPid } = start()
await waitAnswer(Date.now() + 20_000)
const pid = odynPid()
const cpu = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) * 10 // utime + stime, clock ticks (100/s) → ms
}
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
const c0 = cpu()
const rssSamples = []
for (let i = 0; i < 5; i++) {
  await new Promise((r) => setTimeout(r, 1000))
  rssSamples.push(rss())
}
console.log(`odyn idle: CPU ${(((cpu() - c0) / 5000) * 100).toFixed(2)} % of one core over 5 s`)
stats('odyn idle RSS', rssSamples, 'MiB')
await stop(child)
rmSync(dir, { recursive: true, force: true })
