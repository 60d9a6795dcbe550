#!/usr/bin/env node
// Build time of @enclave/builder side by side with the GNU pipeline on the same image
// (tar extract, `cpio -o -H newc`, `sha384sum`), and peak RSS of the builder.
//   node bench/build.mjs [--size-mib 256] [--runs 3] [--rss-check]   (build the package first)
// --rss-check also builds a 1 GiB image and checks peak RSS < 300 MiB (exit 1 when over).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { pack } from 'tar-stream'

const args = process.argv.slice(2)
const flag = (name, dflt) => {
  const i = args.indexOf(name)
  return i === -1 ? dflt : Number(args[i + 1])
}
const SIZE_MIB = flag('--size-mib', 256)
const RUNS = flag('--runs', 3)
const RSS_CHECK = args.includes('--rss-check')
const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const MIB = 1024 * 1024

for (const tool of ['tar', 'cpio', 'sha384sum']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`bench: ${tool} is needed for the GNU side`)
    process.exit(2)
  }
}

/** An OCI layout with two uncompressed layers: a few big files and many small ones. */
async function makeImage(dir, sizeMib) {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true })
  const { createHash } = await import('node:crypto')
  const layers = []
  const perLayer = Math.floor(sizeMib / 2)
  for (let l = 0; l < 2; l++) {
    const p = pack()
    const tmp = join(dir, `layer${l}.tar`)
    const hash = createHash('sha256')
    const out = createWriteStream(tmp)
    const done = pipeline(
      p,
      async function* (src) {
        for await (const c of src) {
          hash.update(c)
          yield c
        }
      },
      out,
    )
    const add = (name, size) =>
      new Promise((resolve, reject) => {
        const e = p.entry({ name, size, mode: 0o644, mtime: new Date(1_600_000_000_000) }, (err) =>
          err ? reject(err) : resolve(),
        )
        let left = size
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, MIB)
            left -= n
            if (!e.write(randomBytes(n))) return e.once('drain', pump)
          }
          e.end()
        }
        pump()
      })
    p.entry({ name: `d${l}/`, type: 'directory', mode: 0o755 })
    const big = Math.floor((perLayer * 0.9) / 8)
    for (let i = 0; i < 8; i++) await add(`d${l}/big${i}.bin`, big * MIB)
    const smallBytes = Math.max(0, perLayer * MIB - 8 * big * MIB)
    const smallCount = 2000
    for (let i = 0; i < smallCount; i++)
      await add(`d${l}/s/${i % 50}/f${i}.txt`, Math.floor(smallBytes / smallCount))
    p.finalize()
    await done
    const digest = hash.digest('hex')
    execFileSync('mv', [tmp, join(dir, 'blobs', 'sha256', digest)])
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${digest}` })
  }
  const blob = (obj) => {
    const b = Buffer.from(JSON.stringify(obj))
    const d = createHash('sha256').update(b).digest('hex')
    writeFileSync(join(dir, 'blobs', 'sha256', d), b)
    return { digest: `sha256:${d}`, size: b.length }
  }
  const config = blob({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
  })
  const manifest = blob({
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers,
  })
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest }],
    }),
  )
  return layers.map((l) => join(dir, 'blobs', 'sha256', l.digest.slice(7)))
}

function makeBlobs(dir) {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'bzImage'), randomBytes(8 * MIB))
  writeFileSync(join(dir, 'cmdline'), 'reboot=k panic=30 pci=off nomodules console=ttyS0')
  writeFileSync(join(dir, 'init'), randomBytes(MIB))
  writeFileSync(join(dir, 'nsm.ko'), randomBytes(64 * 1024))
}

/** One builder run in a fresh process: wall time and its peak RSS. */
function runBuilder(image, blobs, output) {
  const script = `
    const { buildEif } = await import(${JSON.stringify(DIST)})
    const t = performance.now()
    const r = await buildEif({ image: ${JSON.stringify(`oci:${image}`)}, output: ${JSON.stringify(output)}, blobsDir: ${JSON.stringify(blobs)} })
    process.stdout.write(JSON.stringify({ ms: performance.now() - t, rssKib: process.resourceUsage().maxRSS, pcr0: r.measurements.PCR0 }))
  `
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    child.stdout.on('data', (c) => {
      out += c
    })
    child.on('close', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`builder exited ${code}`)),
    )
  })
}

/** The GNU equivalent: extract the layers, cpio the tree, hash kernel+cmdline+ramdisks. */
function runGnu(layerFiles, blobs, work) {
  const root = join(work, 'root')
  rmSync(root, { recursive: true, force: true })
  mkdirSync(join(root, 'rootfs'), { recursive: true })
  const t = performance.now()
  for (const layer of layerFiles) execFileSync('tar', ['-xf', layer, '-C', join(root, 'rootfs')])
  execFileSync('sh', [
    '-c',
    `cd ${root} && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet > ${work}/ramdisk.cpio`,
  ])
  execFileSync('sh', [
    '-c',
    `cat ${blobs}/bzImage ${blobs}/cmdline ${blobs}/init ${work}/ramdisk.cpio | sha384sum > /dev/null`,
  ])
  return { ms: performance.now() - t }
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] }
}

async function bench(sizeMib, runs) {
  const work = mkdtempSync(join(tmpdir(), 'builder-bench-'))
  try {
    console.error(`bench: making a ${sizeMib} MiB image…`)
    const layers = await makeImage(join(work, 'image'), sizeMib)
    makeBlobs(join(work, 'blobs'))
    const ours = []
    const gnu = []
    for (let i = 0; i < runs; i++) {
      ours.push(await runBuilder(join(work, 'image'), join(work, 'blobs'), join(work, 'out.eif')))
      rmSync(join(work, 'out.eif'), { force: true })
      gnu.push(runGnu(layers, join(work, 'blobs'), work))
      rmSync(join(work, 'root'), { recursive: true, force: true })
      rmSync(join(work, 'ramdisk.cpio'), { force: true })
    }
    return { ours, gnu }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

const { ours, gnu } = await bench(SIZE_MIB, RUNS)
const o = stats(ours.map((r) => r.ms))
const g = stats(gnu.map((r) => r.ms))
const rss = Math.max(...ours.map((r) => r.rssKib)) / 1024
const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`
console.log(
  `\nImage: ${SIZE_MIB} MiB (2 layers, 16 big files, 4000 small files), ${RUNS} runs each, ${process.platform} ${process.arch}, node ${process.version}\n`,
)
console.log('| pipeline | median | min | max | MiB/s (median) | peak RSS |')
console.log('|---|---|---|---|---|---|')
console.log(
  `| @enclave/builder buildEif (EIF + PCRs) | ${fmt(o.median)} | ${fmt(o.min)} | ${fmt(o.max)} | ${(SIZE_MIB / (o.median / 1000)).toFixed(0)} | ${rss.toFixed(0)} MiB |`,
)
console.log(
  `| GNU tar -x + cpio -o -H newc + sha384sum | ${fmt(g.median)} | ${fmt(g.min)} | ${fmt(g.max)} | ${(SIZE_MIB / (g.median / 1000)).toFixed(0)} | n/a |`,
)
console.log(`\nratio builder / GNU (median): ${(o.median / g.median).toFixed(2)}× (target ≤ 1.5×)`)

if (RSS_CHECK) {
  const big = await bench(1024, 1)
  const peak = big.ours[0].rssKib / 1024
  const ok = peak < 300
  console.log(
    `\n1 GiB image: builder ${fmt(big.ours[0].ms)}, GNU ${fmt(big.gnu[0].ms)}, builder peak RSS ${peak.toFixed(0)} MiB: ${ok ? 'PASS' : 'FAIL'} (limit 300 MiB)`,
  )
  if (!ok) process.exitCode = 1
}
