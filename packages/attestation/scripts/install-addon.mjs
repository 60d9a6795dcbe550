// `install` lifecycle: build (or find a prebuild of) the /dev/nsm addon, never failing the install.
// Verifying documents and the dev NSM are pure JavaScript; only openNsm() inside an enclave needs
// the addon, and it reports NsmUnavailableError (with the rebuild command) when it is missing.
// ENCLAVE_ATTESTATION_INSTALL_VERBOSE=1 shows node-gyp's output.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const verbose = process.env.ENCLAVE_ATTESTATION_INSTALL_VERBOSE === '1'
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
    const lines = `${result.stderr ?? ''}`.split('\n').map((l) => l.trim())
    reason =
      lines.find((l) => /^\w*Error: /.test(l)) ??
      lines.find((l) => l.startsWith('gyp ERR! stack')) ??
      `exit code ${result.status}`
  }
} catch (err) {
  reason = err.message.split('\n')[0]
}
if (reason) {
  process.stderr.write(
    `@enclave/attestation: the /dev/nsm addon was not built (${reason}); verification and the dev NSM work, openNsm() in an enclave needs "npx node-gyp rebuild" in ${root}\n`,
  )
}
process.exit(0)
