#!/usr/bin/env node
// Type-checks the code examples of every package README against the built packages, so an
// example a user copies compiles with the API it documents. Each ```ts or ```js block becomes a
// module next to the package (inside its node_modules, so the package's own dependencies resolve)
// and one strict `tsc --noEmit` run checks them all; @enclave/* resolve to the packages' dist types.
// A block preceded by `<!-- not-checked -->` (a fragment, a shell transcript) is left out.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, relative, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '../..')
const FOLDER = '.readme-examples'
const BLOCK = /(<!--\s*not-checked\s*-->\s*\n)?```(ts|typescript|js|javascript)\n([\s\S]*?)```/g

const files = []
const packageDirs = readdirSync(join(root, 'packages'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => join(root, 'packages', entry.name))
for (const dir of packageDirs) {
  const readme = join(dir, 'README.md')
  if (!existsSync(readme)) continue
  const out = join(dir, 'node_modules', FOLDER)
  rmSync(out, { recursive: true, force: true })
  let index = 0
  for (const match of readFileSync(readme, 'utf8').matchAll(BLOCK)) {
    if (match[1]) continue
    index += 1
    const line = readFileSync(readme, 'utf8').slice(0, match.index).split('\n').length + 1
    const ext = match[2].startsWith('t') ? 'mts' : 'mjs'
    mkdirSync(out, { recursive: true })
    const file = join(out, `example-${index}.${ext}`)
    // The first line says where the block came from, so tsc's errors point a reader at the README.
    writeFileSync(file, `// ${relative(root, readme)}:${line}\nexport {}\n${match[3]}`)
    files.push(file)
  }
}

const tsconfig = join(root, 'node_modules', '.cache', 'readme-examples.tsconfig.json')
mkdirSync(join(root, 'node_modules', '.cache'), { recursive: true })
writeFileSync(
  tsconfig,
  JSON.stringify({
    compilerOptions: {
      target: 'es2022',
      lib: ['es2023'],
      module: 'nodenext',
      moduleResolution: 'nodenext',
      types: ['node'],
      typeRoots: [join(root, 'node_modules', '@types')],
      strict: true,
      noEmit: true,
      allowJs: true,
      checkJs: true,
      skipLibCheck: true,
      paths: { '@enclave/*': [join(root, 'packages/*/dist/index.d.ts')] },
    },
    files,
  }),
)

const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')
const result = spawnSync(process.execPath, [tsc, '-p', tsconfig], { stdio: 'inherit' })
for (const file of files) rmSync(file, { force: true })
if (result.status !== 0) {
  console.error('readme-examples: fix the README examples above (or mark a fragment <!-- not-checked -->)')
  process.exit(1)
}
console.log(`readme-examples: ${files.length} example(s) type-check`)
