import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseLdd, projectEntries } from '../lib/initramfs.mjs'
import { discoverSuites, selectProject } from '../lib/project.mjs'

let temp: { path: string; remove: () => void }
let root: string

function file(rel: string, content = '') {
  const path = join(root, rel)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, content)
}

function link(rel: string, target: string) {
  const path = join(root, rel)
  mkdirSync(dirname(path), { recursive: true })
  symlinkSync(target, path)
}

// A small pnpm-shaped repository: workspace packages linked to each other, a dependency in the
// .pnpm store that itself depends on another store entry, one unbuilt package.
beforeEach(() => {
  temp = makeTempDir('enclave-vm-test-')
  root = realpathSync(temp.path)
  file('package.json', '{"name":"root","private":true}')
  file(
    'packages/a/package.json',
    JSON.stringify({
      name: '@enclave/a',
      dependencies: { 'dep-x': '1', '@enclave/b': 'workspace:*' },
      devDependencies: { vitest: '4' },
    }),
  )
  file('packages/a/dist/index.js', 'export const a = 1')
  file('packages/a/src/index.ts', 'source stays out')
  file('packages/a/test/guest/one.mjs', '')
  file('packages/a/test/guest/_helper.mjs', '')
  file('packages/a/test/guest/notes.txt', '')
  file('packages/a/test/unit.test.ts', '')
  file('packages/a/build/Release/a.node', 'addon')
  file('packages/a/build/Release/obj.target/a.o', 'object file stays out')
  link('packages/a/node_modules/dep-x', '../../../node_modules/.pnpm/dep-x@1/node_modules/dep-x')
  link('packages/a/node_modules/@enclave/b', '../../../b')
  link('packages/a/node_modules/vitest', '../../../node_modules/.pnpm/vitest@4/node_modules/vitest')
  file('node_modules/.pnpm/vitest@4/node_modules/vitest/package.json', '{"name":"vitest"}')
  file('packages/b/package.json', '{"name":"@enclave/b"}')
  file('packages/b/dist/index.js', 'export const b = 2')
  file('packages/c/package.json', '{"name":"@enclave/c"}')
  file('packages/c/test/guest/two.mjs', '')
  file(
    'node_modules/.pnpm/dep-x@1/node_modules/dep-x/package.json',
    '{"name":"dep-x","dependencies":{"dep-y":"2"}}',
  )
  file('node_modules/.pnpm/dep-x@1/node_modules/dep-x/index.js', 'x')
  link('node_modules/.pnpm/dep-x@1/node_modules/dep-y', '../../dep-y@2/node_modules/dep-y')
  file('node_modules/.pnpm/dep-y@2/node_modules/dep-y/package.json', '{"name":"dep-y"}')
  file('node_modules/.pnpm/dep-y@2/node_modules/dep-y/index.js', 'y')
  file('apps/z/package.json', '{"name":"z"}')
  file('apps/z/dist/main.js', '')
  file('apps/z/test/guest/three.mjs', '')
  file('tooling/vm/test/guest/boot.mjs', '')
})

afterEach(() => temp.remove())

describe('discoverSuites', () => {
  it('finds the tool suites first, then packages and apps; files starting with _ are helpers', () => {
    const suites = discoverSuites(root, join(root, 'tooling/vm'))
    expect(suites.map((s) => s.name)).toEqual(['vm/boot', 'a/one', 'c/two', 'z/three'])
    expect(suites[1]).toEqual({
      name: 'a/one',
      file: join(root, 'packages/a/test/guest/one.mjs'),
      cwd: join(root, 'packages/a'),
    })
  })
})

describe('selectProject', () => {
  it('takes built workspace packages and their runtime dependency closure, not dev dependencies', () => {
    const selection = selectProject(root, [join(root, 'tooling/vm/test/guest')])
    const copies = Object.fromEntries([...selection.copies].map(([p, k]) => [p.slice(root.length + 1), k]))
    expect(copies).toEqual({
      'packages/a': 'workspace',
      'packages/b': 'workspace',
      'apps/z': 'workspace',
      'tooling/vm/test/guest': 'dir',
      'package.json': 'dir',
      'node_modules/.pnpm/dep-x@1/node_modules/dep-x': 'dir',
      'node_modules/.pnpm/dep-y@2/node_modules/dep-y': 'dir',
    })
    expect([...selection.links.keys()].map((p) => p.slice(root.length + 1)).sort()).toEqual([
      'node_modules/.pnpm/dep-x@1/node_modules/dep-y',
      'packages/a/node_modules/@enclave/b',
      'packages/a/node_modules/dep-x',
    ])
  })

  it('lists the selection for cpio: parents first, sources and dev files left out', () => {
    const selection = selectProject(root, [join(root, 'tooling/vm/test/guest')])
    const entries = projectEntries(selection, [join(root, 'bin/node')])
    const base = root.slice(1)
    // Every folder above an entry comes before it.
    for (const entry of entries) {
      const parent = dirname(entry)
      if (parent !== '.') expect(entries.indexOf(parent)).toBeLessThan(entries.indexOf(entry))
    }
    const inRoot = entries.filter((e) => e.startsWith(`${base}/`)).map((e) => e.slice(base.length + 1))
    expect(inRoot).toContain('packages/a/dist/index.js')
    expect(inRoot).toContain('packages/a/build/Release/a.node')
    expect(inRoot).toContain('packages/a/test/guest/_helper.mjs')
    expect(inRoot).toContain('packages/a/node_modules/dep-x')
    expect(inRoot).toContain('node_modules/.pnpm/dep-x@1/node_modules/dep-y')
    expect(inRoot).toContain('node_modules/.pnpm/dep-y@2/node_modules/dep-y/index.js')
    expect(inRoot).toContain('tooling/vm/test/guest/boot.mjs')
    expect(inRoot).toContain('bin/node')
    expect(inRoot).toContain('packages/a/test/unit.test.ts')
    for (const absent of [
      'packages/a/src',
      'packages/a/build/Release/obj.target',
      'packages/a/node_modules/vitest',
      'packages/c',
    ]) {
      expect(inRoot.some((e) => e === absent || e.startsWith(`${absent}/`))).toBe(false)
    }
  })

  it('survives a cpio round trip with node resolution intact', () => {
    const selection = selectProject(root, [])
    const entries = projectEntries(selection)
    const archive = spawnSync('cpio', ['--create', '--format=newc', '--quiet'], {
      cwd: '/',
      input: entries.join('\n'),
    })
    expect(archive.status).toBe(0)
    const out = join(root, 'unpacked')
    mkdirSync(out)
    const unpacked = spawnSync('cpio', ['--extract', '--make-directories', '--quiet'], {
      cwd: out,
      input: archive.stdout,
    })
    expect(unpacked.status).toBe(0)
    const at = (rel: string) => join(out, root, rel)
    expect(readFileSync(at('packages/a/node_modules/dep-x/index.js'), 'utf8')).toBe('x')
    expect(readFileSync(at('node_modules/.pnpm/dep-x@1/node_modules/dep-y/index.js'), 'utf8')).toBe('y')
    expect(readFileSync(at('packages/a/node_modules/@enclave/b/dist/index.js'), 'utf8')).toBe(
      'export const b = 2',
    )
    expect(existsSync(at('packages/a/src'))).toBe(false)
  })
})

describe('parseLdd', () => {
  it('lists the libraries and the loader of a dynamic executable', () => {
    const output = [
      '\tlinux-vdso.so.1 (0x00007fef24522000)',
      '\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007fef2450b000)',
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fef23ffe000)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007fef24524000)',
    ].join('\n')
    expect(parseLdd(output)).toEqual([
      '/lib/x86_64-linux-gnu/libdl.so.2',
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/lib64/ld-linux-x86-64.so.2',
    ])
  })

  it('lists nothing for a static executable', () => {
    expect(parseLdd('\tnot a dynamic executable\n')).toEqual([])
  })
})
