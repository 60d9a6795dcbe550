// `install` lifecycle: find a prebuild of the AF_VSOCK addon or build it, never failing the install.
// unix://, tcp://, hvsock:// and dev mode are pure JavaScript; only real vsock:// and the kernel
// relay need the addon, and without it they report the cause and the fix when used (or fall back,
// for the relay). A machine without Linux's vsock headers (macOS, Windows) still installs.
// ENCLAVE_VSOCK_INSTALL_VERBOSE=1 shows node-gyp's output.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const verbose = process.env.ENCLAVE_VSOCK_INSTALL_VERBOSE === '1'
let reason
try {
  const bin = createRequire(join(root, 'package.json')).resolve('node-gyp-build/bin.js')
  const result = spawnSync(process.execPath, [bin], {
    cwd: root,
    stdio: verbose ? 'inherit' : 'pipe',
    encoding: 'utf8',
  })
  if (result.error) reason = result.error.message
  else if (result.status !== 0) {
    const lines = `${result.stderr ?? ''}`.split('\n').map((line) => line.trim())
    reason = lines.find((line) => line.startsWith('gyp ERR! stack')) ?? `exit code ${result.status}`
  }
} catch (err) {
  reason = err.message.split('\n')[0]
}
if (reason) {
  process.stderr.write(
    `@enclave/vsock-transport: the AF_VSOCK addon was not built (${reason}); unix://, tcp://, hvsock:// and dev mode work, vsock:// needs Linux and "npx node-gyp rebuild" in ${root}\n`,
  )
}
process.exit(0)
