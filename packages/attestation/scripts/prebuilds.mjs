// prepack/postpack: ship the addon built by `pnpm build` as a prebuild, so that an install without
// a compiler, or whose package manager blocks install scripts, still finds a working addon.
// node-gyp-build picks prebuilds/<platform>-<arch>/node.napi.<libc>.node when build/Release is
// absent; N-API keeps it valid across Node versions.
//   node scripts/prebuilds.mjs add | remove
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { arch, platform } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const built = join(root, 'build', 'Release', 'enclave_nsm.node')
const folder = join(root, 'prebuilds')
const libc = process.report?.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl'
const target = join(folder, `${platform()}-${arch()}`, `node.napi.${libc}.node`)

const command = process.argv[2]
if (command === 'add') {
  if (platform() !== 'linux') {
    process.stderr.write(`prebuilds: no NSM addon on ${platform()}; packing without a prebuild\n`)
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
  process.stderr.write('usage: node scripts/prebuilds.mjs add|remove\n')
  process.exit(2)
}
