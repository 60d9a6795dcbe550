import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { buildEif } from '../src/index.js'
import { eifSections, gnuExtract } from './cpio-tools.js'
import { type TarSpec, writeFakeBlobs, writeOciLayout } from './fixtures.js'

// A reference model of OCI layer semantics, checked against what GNU cpio extracts from our ramdisk.
type Model = Map<string, { kind: 'file' | 'dir' | 'symlink'; value: string; layer: number }>

const parentsOf = (p: string) => {
  const parts = p.split('/')
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'))
}
const removeTree = (m: Model, p: string) => {
  for (const k of [...m.keys()]) if (k === p || k.startsWith(`${p}/`)) m.delete(k)
}

function applyModel(layers: TarSpec[][]): Model {
  const m: Model = new Map()
  layers.forEach((layer, n) => {
    for (const e of layer) {
      const name = e.name.replace(/\/$/, '')
      const base = name.split('/').pop()!
      const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : ''
      if (base === '.wh..wh..opq') {
        for (const k of [...m.keys()])
          if (k.startsWith(`${dir}/`) && (m.get(k)?.layer ?? n) < n) removeTree(m, k)
        continue
      }
      if (base.startsWith('.wh.')) {
        const target = dir ? `${dir}/${base.slice(4)}` : base.slice(4)
        if (m.has(target) && m.get(target)!.layer < n) removeTree(m, target)
        continue
      }
      for (const p of parentsOf(name))
        if (m.get(p)?.kind !== 'dir') m.set(p, { kind: 'dir', value: '', layer: n })
      const kind = e.type === 'directory' ? 'dir' : e.type === 'symlink' ? 'symlink' : 'file'
      if (m.get(name)?.kind === 'dir' && kind !== 'dir') removeTree(m, name)
      m.set(name, { kind, value: kind === 'file' ? String(e.content ?? '') : (e.linkname ?? ''), layer: n })
    }
  })
  return m
}

function readTree(root: string, at = ''): Map<string, { kind: string; value: string }> {
  const out = new Map<string, { kind: string; value: string }>()
  for (const name of readdirSync(join(root, at))) {
    const rel = at ? `${at}/${name}` : name
    const st = lstatSync(join(root, rel))
    if (st.isSymbolicLink()) out.set(rel, { kind: 'symlink', value: readlinkSync(join(root, rel)) })
    else if (st.isDirectory()) {
      out.set(rel, { kind: 'dir', value: '' })
      for (const [k, v] of readTree(root, rel)) out.set(k, v)
    } else out.set(rel, { kind: 'file', value: readFileSync(join(root, rel), 'utf8') })
  }
  return out
}

// Names from a tiny alphabet so layers collide, override and white each other out often.
const seg = fc.constantFrom('a', 'b', 'c')
const path = fc.array(seg, { minLength: 1, maxLength: 3 }).map((p) => p.join('/'))
const entry: fc.Arbitrary<TarSpec> = fc.oneof(
  fc.record({ name: path, content: fc.string({ maxLength: 8 }) }),
  path.map((p) => ({ name: `${p}/`, type: 'directory' as const })),
  fc
    .record({ name: path, linkname: fc.constantFrom('a', '../b', '/c/x') })
    .map((e) => ({ ...e, type: 'symlink' as const })),
  path.map((p) => {
    const parts = p.split('/')
    parts[parts.length - 1] = `.wh.${parts[parts.length - 1]}`
    return { name: parts.join('/'), content: '' }
  }),
  path.map((p) => ({ name: `${p}/.wh..wh..opq`, content: '' })),
)
// One entry per path per layer (real layer tars never repeat a path), no whiteout of a path the
// same layer creates, and nothing below a path that a layer makes a symlink (tar would follow it).
const layer = fc.uniqueArray(entry, {
  selector: (e) => e.name.replace(/\/$/, '').replace(/\.wh\./, ''),
  maxLength: 6,
})

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'flatten-model-'))
  writeFakeBlobs(join(dir, 'blobs'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

test('property: the ramdisk holds exactly what OCI layer semantics say (GNU cpio extraction vs a model)', async () => {
  let run = 0
  await fc.assert(
    fc.asyncProperty(fc.array(layer, { minLength: 1, maxLength: 4 }), async (layers) => {
      // Symlinked parents are resolved by the builder (as tar would); keep the model simple.
      const symlinks = new Set(
        layers
          .flat()
          .filter((e) => e.type === 'symlink')
          .map((e) => e.name),
      )
      fc.pre(layers.flat().every((e) => !parentsOf(e.name.replace(/\/$/, '')).some((p) => symlinks.has(p))))
      // A layer never whites out (or makes opaque) something it also writes below: docker diffs can't.
      for (const l of layers) {
        for (const w of l) {
          const name = w.name.replace(/\/$/, '')
          const base = name.split('/').pop()!
          if (!base.startsWith('.wh.')) continue
          const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : ''
          const target =
            base === '.wh..wh..opq' ? parent : parent ? `${parent}/${base.slice(4)}` : base.slice(4)
          fc.pre(l.every((e) => !e.name.replace(/\/$/, '').startsWith(`${target}/`) || e === w))
        }
      }
      const at = join(dir, `case-${run++}`)
      await writeOciLayout(join(at, 'oci'), { layers })
      const output = join(at, 'out.eif')
      await buildEif({ image: `oci:${join(at, 'oci')}`, output, blobsDir: join(dir, 'blobs') })
      const customer = (await eifSections(output)).filter((s) => s.type === 'ramdisk')[1]!.data
      const out = join(at, 'x')
      const { mkdirSync } = await import('node:fs')
      mkdirSync(out)
      gnuExtract(customer, out)
      const got = readTree(join(out, 'rootfs'))
      for (const g of ['dev', 'run', 'sys', 'var', 'proc', 'tmp']) got.delete(g)
      const want = new Map([...applyModel(layers)].map(([k, v]) => [k, { kind: v.kind, value: v.value }]))
      for (const g of ['dev', 'run', 'sys', 'var', 'proc', 'tmp']) want.delete(g)
      expect(Object.fromEntries([...got].sort())).toEqual(Object.fromEntries([...want].sort()))
      rmSync(at, { recursive: true, force: true })
    }),
    { numRuns: 40 },
  )
})
