#!/usr/bin/env node
// prepack/postpack of the packages with an N-API addon: ship the addon built by `pnpm build` as a
// prebuild, so that an install without a compiler, or whose package manager blocks install scripts
// (npm's allowScripts, pnpm's onlyBuiltDependencies), still finds a working addon. node-gyp-build
// picks prebuilds/<platform>-<arch>/node.napi.<libc>.node when build/Release is absent; N-API keeps
// it valid across Node versions. Runs in the package's folder (npm and pnpm run pack scripts there):
//   node ../../tooling/scripts/prebuilds.mjs add <addon-name> | remove
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { arch, platform } from 'node:os'
import { dirname, join } from 'node:path'

const [command, addon] = process.argv.slice(2)
const root = process.cwd()
const folder = join(root, 'prebuilds')

if (command === 'add' && addon) {
  const built = join(root, 'build', 'Release', `${addon}.node`)
  const libc = process.report?.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl'
  const target = join(folder, `${platform()}-${arch()}`, `node.napi.${libc}.node`)
  if (platform() !== 'linux') {
    process.stderr.write(`prebuilds: no ${addon} addon on ${platform()}; packing without a prebuild\n`)
  } else if (!existsSync(built)) {
    process.stderr.write(`prebuilds: ${built} is missing; run "pnpm build" first\n`)
    process.exit(1)
  } else {
    mkdirSync(dirname(target), { recursive: true })
    copyFileSync(built, target)
    process.stdout.write(`prebuilds: ${target}\n`)
  }
} else if (command === 'remove') {
  rmSync(folder, { recursive: true, force: true })
} else {
  process.stderr.write('usage: node prebuilds.mjs add <addon-name> | remove\n')
  process.exit(2)
}
