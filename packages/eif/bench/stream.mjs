#!/usr/bin/env node
// Side-by-side: @enclave/eif writing and reading an EIF with a large ramdisk, against the GNU
// tools doing the equivalent byte work (cat to a new file + sha384sum; sha384sum to read).
// Also reports the writer's and reader's peak RSS. Uses the built dist: run `pnpm build` first.
//   node bench/stream.mjs            (1024 MiB ramdisk, 3 runs)
//   EIF_BENCH_MIB=256 EIF_BENCH_RUNS=5 node bench/stream.mjs
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const mib = Number(process.env.EIF_BENCH_MIB ?? 1024)
const runs = Number(process.env.EIF_BENCH_RUNS ?? 3)
const dist = new URL('../dist/index.js', import.meta.url).href

if (process.argv[2] === 'child') {
  const { writeEif, readEif } = await import(dist)
  const [, , , mode, ramdisk, out] = process.argv
  const t0 = performance.now()
  if (mode === 'write') {
    await writeEif(out, {
      kernel: Buffer.from('kernel'),
      cmdline: 'console=ttyS0',
      ramdisks: [Buffer.from('boot'), { path: ramdisk }],
    })
  } else {
    const r = await readEif(out)
    if (!r.crc.ok) throw new Error('crc')
  }
  const ms = performance.now() - t0
  process.stdout.write(JSON.stringify({ ms, maxRssMiB: process.resourceUsage().maxRSS / 1024 }))
  process.exit(0)
}

const dir = mkdtempSync(join(tmpdir(), 'eif-bench-'))
try {
  const ramdisk = join(dir, 'ramdisk.bin')
  execFileSync('sh', ['-c', `head -c ${mib}M /dev/urandom > ${ramdisk}`])
  const out = join(dir, 'out.eif')
  const time = (cmd, args) => {
    const t0 = performance.now()
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    if (r.status !== 0) throw new Error(`${cmd} failed`)
    return { ms: performance.now() - t0, out: r.stdout.toString() }
  }
  const rows = { 'eif write': [], 'gnu cat+sha384sum': [], 'eif read (crc+pcr)': [], 'gnu sha384sum': [] }
  let peakWrite = 0
  let peakRead = 0
  for (let i = 0; i < runs; i++) {
    const w = time(process.execPath, [new URL(import.meta.url).pathname, 'child', 'write', ramdisk, out])
    const wj = JSON.parse(w.out)
    rows['eif write'].push(w.ms)
    peakWrite = Math.max(peakWrite, wj.maxRssMiB)
    rows['gnu cat+sha384sum'].push(
      time('sh', ['-c', `cat ${ramdisk} > ${join(dir, 'copy')} && sha384sum ${join(dir, 'copy')} >/dev/null`])
        .ms,
    )
    const r = time(process.execPath, [new URL(import.meta.url).pathname, 'child', 'read', ramdisk, out])
    rows['eif read (crc+pcr)'].push(r.ms)
    peakRead = Math.max(peakRead, JSON.parse(r.out).maxRssMiB)
    rows['gnu sha384sum'].push(time('sha384sum', [out]).ms)
  }
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b)
    return { median: s[Math.floor(s.length / 2)], min: s[0], max: s.at(-1) }
  }
  console.log(`ramdisk ${mib} MiB, ${runs} runs each (wall ms, including process start)`)
  console.log('| task | median | min | max | ratio vs GNU |')
  console.log('|---|---|---|---|---|')
  const pairs = { 'eif write': 'gnu cat+sha384sum', 'eif read (crc+pcr)': 'gnu sha384sum' }
  for (const [name, xs] of Object.entries(rows)) {
    const s = stats(xs)
    const base = pairs[name] ? stats(rows[pairs[name]]).median : undefined
    console.log(
      `| ${name} | ${s.median.toFixed(0)} | ${s.min.toFixed(0)} | ${s.max.toFixed(0)} | ${base ? (s.median / base).toFixed(2) : ''} |`,
    )
  }
  console.log(`peak RSS: writer ${peakWrite.toFixed(0)} MiB, reader ${peakRead.toFixed(0)} MiB`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
