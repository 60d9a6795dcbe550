// `pnpm build` step 1: node-gyp build of the vsock addon, offline when Node's headers are local.
// A configured tree builds incrementally (`node-gyp build`): `rebuild` deletes build/Release first,
// and tests or benches running meanwhile would find no addon and silently use the stream relay.
// node-gyp downloads headers unless told where they are; Node installs them at
// <prefix>/include/node, so that prefix is the nodedir unless npm_config_nodedir says otherwise.
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'

const env = { ...process.env }
if (!env.npm_config_nodedir) {
  const prefix = resolve(process.execPath, '..', '..')
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix
}
const makefile = join('build', 'Makefile')
const configured = existsSync(makefile) && statSync(makefile).mtimeMs >= statSync('binding.gyp').mtimeMs
const result = spawnSync('node-gyp', [configured ? 'build' : 'rebuild'], { stdio: 'inherit', env })
if (result.error) {
  process.stderr.write(`build-addon: cannot run node-gyp (${result.error.message}); is it installed?\n`)
  process.exit(1)
}
process.exit(result.status ?? 1)
