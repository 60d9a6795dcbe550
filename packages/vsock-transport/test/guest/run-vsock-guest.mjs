#!/usr/bin/env node
// Runs the transport compliance checks over REAL AF_VSOCK, with plain Node (no vitest), against
// the BUILT package (dist/ + build/Release or prebuilds/). Meant for a Linux guest with the
// vsock_loopback transport (QEMU, tooling/vm): it listens on vsock://any:0 and dials
// vsock://<cid>:<port>, by default CID 1 (VMADDR_CID_LOCAL, the loopback). Never run it on a
// machine without vsock loopback: there CID 1 reaches the host.
//
//   node test/guest/run-vsock-guest.mjs [--cid 1] [--only echoRoundTrip,peerAddress] [--timeout-ms 120000]
//                                       [--force] [--dev DIR]
//
// Safety (_cid-guard.mjs): dialling CIDs 0-3 is refused unless the vsock_loopback module is loaded
// (/sys/module/vsock_loopback) AND --force is given (or ENCLAVE_VM_GUEST=1, set by tooling/vm's
// guest runner, which runs this file without arguments). --dev DIR runs the same checks in dev
// mode (Unix sockets under DIR), to try the runner itself on a machine without vsock.
//
// Prints one line per check ("ok" / "not ok" + the error) and a summary; exits 0 when every check
// passed, 1 when one failed, 2 on bad arguments or when the package cannot be loaded.
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { cidRefusal } from './_cid-guard.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const packageRoot = join(here, '..', '..')

function usage(message) {
  process.stderr.write(`run-vsock-guest: ${message}\n`)
  process.exit(2)
}

let args
try {
  args = parseArgs({
    options: {
      cid: { type: 'string', default: '1' },
      only: { type: 'string' },
      'timeout-ms': { type: 'string', default: '120000' },
      force: { type: 'boolean', default: false },
      dev: { type: 'string' },
    },
  }).values
} catch (err) {
  usage(err.message)
}
const cid = Number(args.cid)
if (!Number.isInteger(cid) || cid < 0 || cid >= 0xffffffff)
  usage(`--cid must be a CID number, got ${args.cid}`)
const timeoutMs = Number(args['timeout-ms'])
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) usage('--timeout-ms must be a positive integer')

const dev = args.dev ? { dir: args.dev, cid } : false
const facts = {
  dev: Boolean(dev),
  force: args.force,
  inGuest: process.env.ENCLAVE_VM_GUEST === '1',
  loopbackLoaded: existsSync('/sys/module/vsock_loopback'),
}
const refusal = cidRefusal({ ...facts, cid })
if (refusal) usage(refusal)

const dist = join(packageRoot, 'dist', 'index.js')
if (!existsSync(dist))
  usage(`${dist} is missing: build the package first (pnpm --filter @enclave/vsock-transport build)`)
const api = await import(pathToFileURL(dist).href)
const { checks } = await import(pathToFileURL(join(here, '..', 'compliance', 'checks.mjs')).href)

const target = {
  api,
  makeAddress: () => 'vsock://any:0',
  dialAddressOf: (server) => `vsock://${cid}:${api.serverAddressOf(server).port}`,
  connectOptions: { dev },
  listenOptions: { dev },
  checkServerPeer: (peer) => {
    if (dev) return // dev mode has no peer address for accepted sockets
    if (peer?.scheme !== 'vsock')
      throw new Error(`server-side peer is ${JSON.stringify(peer)}, not a vsock address`)
    if (!Number.isInteger(peer.port) || peer.port <= 0)
      throw new Error(`peer port ${peer.port} is not a port`)
    // Over the loopback transport the client's CID is the loopback CID it dialled.
    if (cid === 1 && peer.cid !== 1) throw new Error(`peer CID ${peer.cid}, expected 1 (loopback)`)
  },
}

/** Checks that need vsock itself, beyond the shared suite. */
const vsockChecks = {
  localCid: async () => {
    if (dev) return
    const value = api.localCid()
    if (!Number.isInteger(value) || value < 0) throw new Error(`localCid() returned ${value}`)
    if (api.localCid() !== value) throw new Error('localCid() is not stable')
  },
  /** A port nobody listens on: ConnectionRefusedError (the virtio loopback answers with a RST). */
  connectRefusedIsTyped: async () => {
    const server = await api.listen('vsock://any:0', { dev })
    const port = api.serverAddressOf(server).port
    await new Promise((resolve) => server.close(resolve))
    const err = await expectConnectFailure(`vsock://${cid}:${port}`)
    if (err.code !== 'ENCLAVE_VSOCK_CONNECTION_REFUSED') throw new Error(`got ${err.code}: ${err.message}`)
    // Real vsock: the RST (ECONNRESET) or a refusal; dev mode: the missing socket file (ENOENT).
    const expected = dev ? ['ENOENT', 'ECONNREFUSED'] : ['ECONNRESET', 'ECONNREFUSED']
    if (!expected.includes(err.systemCode))
      throw new Error(`systemCode ${err.systemCode}, expected one of ${expected.join(', ')}`)
    if (!(err instanceof api.ConnectionRefusedError))
      throw new Error(`${err.name} is not a ConnectionRefusedError`)
  },
  /**
   * A CID no transport serves: UnreachableError with ENODEV. Only where CID 3 stays inside the
   * machine (the guard allows it: vsock_loopback and a deliberate yes); skipped elsewhere.
   */
  unreachableIsTyped: async () => {
    if (dev || cidRefusal({ ...facts, cid: 3 }))
      return 'skip: CID 3 may only be dialled inside the QEMU guest'
    const err = await expectConnectFailure('vsock://3:5000')
    if (err.code !== 'ENCLAVE_VSOCK_UNREACHABLE' || err.systemCode !== 'ENODEV')
      throw new Error(`got ${err.code} (${err.systemCode}): ${err.message}`)
    if (!(err instanceof api.UnreachableError)) throw new Error(`${err.name} is not an UnreachableError`)
  },
}

/** Connects, expecting a failure; returns the error. */
async function expectConnectFailure(address) {
  let socket
  try {
    socket = await api.connect(address, { dev, timeoutMs: 10_000 })
  } catch (err) {
    return err
  }
  socket.destroy()
  throw new Error(`connect to ${address} succeeded`)
}

/** Open file descriptors of this process (Linux). */
const openFds = () => readdirSync('/proc/self/fd').length

/** A server that answers every connection with `reply`, and the address to dial it. */
async function replyServer(reply) {
  const server = await api.listen('vsock://any:0', { dev }, (s) => {
    s.on('error', () => {})
    s.end(reply)
  })
  return { server, dial: target.dialAddressOf(server) }
}

function readAll(socket) {
  return new Promise((resolve, reject) => {
    const chunks = []
    socket.on('data', (c) => chunks.push(c))
    socket.once('end', () => resolve(Buffer.concat(chunks).toString()))
    socket.once('error', reject)
  })
}

Object.assign(vsockChecks, {
  /** Sequential connect / read / close: as many fds after as before (real accept and close paths). */
  noFdLeak: async () => {
    const { server, dial } = await replyServer('x')
    const waitIdle = async () => {
      for (let i = 0; i < 500; i++) {
        const n = await new Promise((r) => server.getConnections((_, count) => r(count)))
        if (n === 0) return
        await new Promise((r) => setTimeout(r, 10))
      }
      throw new Error('server connections did not drain')
    }
    const once = async () => {
      const socket = await api.connect(dial, { dev, timeoutMs: 10_000 })
      if ((await readAll(socket)) !== 'x') throw new Error('wrong reply')
      await new Promise((r) => (socket.destroyed ? r() : socket.once('close', r)))
    }
    await once()
    await waitIdle()
    const before = openFds()
    for (let i = 0; i < 150; i++) await once()
    await waitIdle()
    const after = openFds()
    await new Promise((r) => server.close(r))
    if (after !== before) throw new Error(`open fds ${before} before, ${after} after 150 connections`)
  },
  /** TCP-only socket options are harmless no-ops on vsock; the idle timer (JavaScript) still works. */
  socketOptions: async () => {
    const server = await api.listen('vsock://any:0', { dev }, (s) => {
      s.on('error', () => {})
      s.pipe(s)
    })
    const socket = await api.connect(target.dialAddressOf(server), { dev, timeoutMs: 10_000 })
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 1000)
    await new Promise((resolve) => {
      socket.setTimeout(100, () => {
        socket.setTimeout(0)
        resolve()
      })
    })
    const reply = readAll(socket)
    socket.end('after options')
    const got = await reply
    await new Promise((r) => server.close(r))
    if (got !== 'after options') throw new Error(`echo after socket options gave ${JSON.stringify(got)}`)
  },
  /** 64 connections at once, each answered with its own bytes. */
  concurrentEcho: async () => {
    const server = await api.listen('vsock://any:0', { dev }, (s) => {
      s.on('error', () => {})
      s.pipe(s)
    })
    const dial = target.dialAddressOf(server)
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const socket = await api.connect(dial, { dev, timeoutMs: 20_000 })
        const reply = readAll(socket)
        socket.end(`connection ${i}`)
        return (await reply) === `connection ${i}`
      }),
    )
    await new Promise((r) => server.close(r))
    if (!results.every(Boolean))
      throw new Error(`${results.filter((ok) => !ok).length} of 64 replies were wrong`)
  },
})

const all = { ...vsockChecks, ...checks }
const only = args.only ? args.only.split(',').map((s) => s.trim()) : Object.keys(all)
for (const name of only)
  if (!(name in all)) usage(`unknown check ${name}; known: ${Object.keys(all).join(', ')}`)

let failed = 0
for (const name of only) {
  const started = Date.now()
  let timer
  try {
    const outcome = await Promise.race([
      all[name](target),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs)
      }),
    ])
    const skip = typeof outcome === 'string' ? ` # ${outcome}` : ''
    process.stdout.write(`ok ${name} (${Date.now() - started} ms)${skip}\n`)
  } catch (err) {
    failed++
    process.stdout.write(`not ok ${name}: ${err?.stack ?? err}\n`)
  } finally {
    clearTimeout(timer)
  }
}
process.stdout.write(
  `# ${only.length - failed}/${only.length} passed over ${dev ? 'dev-mode ' : ''}vsock (dial CID ${cid})\n`,
)
process.exit(failed === 0 ? 0 : 1)
