#!/usr/bin/env node
// Proves the foundation packages install and work alone: packs @enclave/protocol,
// @enclave/vsock-transport, @enclave/tunnel and @enclave/supervisor (with their @enclave/logger
// and @enclave/addon-install) with `pnpm pack`, installs the tarballs with plain npm into an empty
// folder (no workspace, no pnpm), forwards bytes through them there and has the
// supervisor's prebuilt reaper addon reap a real orphan.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '../..')
const packages = ['addon-install', 'logger', 'protocol', 'vsock-transport', 'tunnel', 'supervisor']
const work = mkdtempSync(join(tmpdir(), 'enclave-pack-'))
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })

try {
  const tarballs = packages.map((name) => {
    run('pnpm', ['pack', '--pack-destination', work], join(root, 'packages', name))
    const file = readdirSync(work).find((f) => f.startsWith(`enclave-${name}-`) && f.endsWith('.tgz'))
    if (!file) throw new Error(`pnpm pack produced no tarball for @enclave/${name}`)
    return join(work, file)
  })
  const app = join(work, 'app')
  execFileSync('mkdir', ['-p', app])
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'pack-smoke', private: true, type: 'module' }),
  )
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], app)

  const esm = `
import { createServer, connect as netConnect } from 'node:net'
import { once } from 'node:events'
import { encodeOriginalDestination } from '@enclave/protocol'
import { existsSync } from 'node:fs'
import { parseAddress, formatAddress, listen, localCid } from '@enclave/vsock-transport'
import { forward } from '@enclave/tunnel'
import { createReaper } from '@enclave/supervisor'
import { spawn } from 'node:child_process'

if (encodeOriginalDestination({ host: '1.2.3.4', port: 443 }).toString('hex') !== '0404030201bb01') throw new Error('protocol: header bytes differ')
if (formatAddress(parseAddress('vsock://any:5000')) !== 'vsock://any:5000') throw new Error('transport: address round trip')
const echo = createServer((s) => s.pipe(s)).listen(0, '127.0.0.1')
await once(echo, 'listening')
const tunnel = await forward({ from: 'tcp://127.0.0.1:0', to: 'tcp://127.0.0.1:' + echo.address().port })
const client = netConnect(Number(new URL(tunnel.address).port), '127.0.0.1')
client.end('hello through the packed tunnel')
let reply = ''
for await (const chunk of client) reply += chunk
if (reply !== 'hello through the packed tunnel') throw new Error('tunnel: echo differs: ' + reply)
await tunnel.close()
echo.close()
// The native addon came with the tarball: real AF_VSOCK bind/listen works where the kernel has vsock.
if (existsSync('/dev/vsock')) {
  const server = await listen('vsock://any:0')
  if (!(localCid() > 0)) throw new Error('transport: no local CID')
  await new Promise((done) => server.close(done))
  console.log('vsock listen ok (local CID ' + localCid() + ')')
}
// The reaper addon (a prebuild in the tarball) makes this process a subreaper: the shell's
// background sleep, orphaned when the shell exits, becomes our child, and a sweep reaps it.
const quiet = { debug() {}, info() {}, warn() {}, error() {}, child() { return quiet } }
const reaper = createReaper({ ownPids: new Set() }, quiet)
const shell = spawn('sh', ['-c', 'sleep 0.2 & echo $!'], { stdio: ['ignore', 'pipe', 'inherit'] })
let orphan = ''
for await (const chunk of shell.stdout) orphan += chunk
const reaped = []
for (let i = 0; i < 60 && !reaped.includes(Number(orphan)); i++) {
  await new Promise((done) => setTimeout(done, 50))
  reaped.push(...reaper.sweep())
}
reaper.stop()
if (!reaped.includes(Number(orphan))) throw new Error('supervisor: orphan ' + orphan.trim() + ' was not reaped (got ' + reaped + ')')
console.log('esm ok')
`
  writeFileSync(join(app, 'smoke.mjs'), esm)
  process.stdout.write(run('node', ['smoke.mjs'], app))
  const cjs = `
const { encodeAck } = require('@enclave/protocol')
const { parseAddress } = require('@enclave/vsock-transport')
const { forward } = require('@enclave/tunnel')
if (encodeAck().toString('hex') !== '060a') throw new Error('protocol (cjs): ack bytes differ')
if (parseAddress('unix:///tmp/x.sock').scheme !== 'unix') throw new Error('transport (cjs): unix address')
if (typeof forward !== 'function') throw new Error('tunnel (cjs): forward missing')
console.log('cjs ok')
`
  writeFileSync(join(app, 'smoke.cjs'), cjs)
  process.stdout.write(run('node', ['smoke.cjs'], app))
  console.log(
    `pack smoke: ${packages.map((p) => `@enclave/${p}`).join(', ')} installed from tarballs and work`,
  )
} finally {
  rmSync(work, { recursive: true, force: true })
}
