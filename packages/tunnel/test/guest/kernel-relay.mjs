// @ts-check
// Guest suite (tooling/vm, `pnpm test:vm`): the kernel relay over REAL AF_VSOCK. The tunnel's
// other guest checks pass on either engine; these fail if a vsock connection silently falls back
// to streams. Runs only inside the QEMU guest: on any other machine vsock CID 1 reaches the host.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { afterEach, test } from 'node:test'
import { connect, listen, serverAddressOf } from '@enclave/vsock-transport'
import { forward, pipeConnection } from '../../dist/index.js'

if (process.env.ENCLAVE_VM_GUEST !== '1' || !existsSync('/sys/module/vsock_loopback')) {
  process.stderr.write('kernel-relay guest suite: runs only in the tooling/vm guest (vsock_loopback)\n')
  process.exit(2)
}

const LIMIT = { timeout: 60_000 }
/** @type {Array<() => unknown>} */
const cleanups = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const sha = (/** @type {Buffer} */ data) => createHash('sha256').update(data).digest('hex')

/** @param {net.Socket} socket @returns {Promise<Buffer>} */
function collect(socket) {
  return new Promise((resolve) => {
    /** @type {Buffer[]} */
    const chunks = []
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.once('end', () => resolve(Buffer.concat(chunks)))
  })
}

/** A connected AF_VSOCK pair over the loopback: [dialled, accepted]. */
async function vsockPair() {
  /** @type {(socket: net.Socket) => void} */
  let onAccept = () => {}
  const accepted = new Promise((resolve) => {
    onAccept = resolve
  })
  const server = await listen('vsock://any:0', { allowHalfOpen: true }, (socket) => onAccept(socket))
  const port = serverAddressOf(server)?.port
  const dialled = await connect(`vsock://1:${port}`, { allowHalfOpen: true })
  const inbound = /** @type {net.Socket} */ (await accepted)
  server.close()
  for (const s of [dialled, inbound]) s.on('error', () => {})
  cleanups.push(() => {
    dialled.destroy()
    inbound.destroy()
  })
  return [dialled, inbound]
}

test(
  'pipeConnection relays two vsock sockets with splice: identical bytes both ways, half-close',
  LIMIT,
  async () => {
    const [alice, a] = await vsockPair()
    const [b, bob] = await vsockPair()
    const pipe = pipeConnection(a, b, { kernelRelay: true })
    assert.equal(pipe.engine, 'splice')
    const up = randomBytes(8 * 1024 * 1024)
    const down = randomBytes(5 * 1024 * 1024 + 3)
    const atBob = collect(bob)
    const atAlice = collect(alice)
    alice.end(up)
    assert.equal(sha(await atBob), sha(up))
    bob.end(down)
    assert.equal(sha(await atAlice), sha(down))
    assert.deepEqual(await pipe.done, { bytesIn: up.length, bytesOut: down.length })
  },
)

test(
  'TCP -> tunnel -> vsock -> tunnel -> TCP: both tunnels relay every connection with splice',
  LIMIT,
  async () => {
    const target = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
    await new Promise((resolve) => target.listen(0, '127.0.0.1', () => resolve(undefined)))
    cleanups.push(() => new Promise((resolve) => target.close(resolve)))
    const targetPort = /** @type {net.AddressInfo} */ (target.address()).port
    const enclave = await forward({ from: 'vsock://any:0', to: `tcp://127.0.0.1:${targetPort}` })
    cleanups.push(() => enclave.close({ drainTimeoutMs: 100 }))
    const vsockPort = Number(/:(\d+)$/.exec(enclave.address)?.[1])
    const parent = await forward({ from: 'tcp://127.0.0.1:0', to: `vsock://1:${vsockPort}` })
    cleanups.push(() => parent.close({ drainTimeoutMs: 100 }))
    const tcpPort = Number(/:(\d+)$/.exec(parent.address)?.[1])
    /** @type {Set<string | undefined>} */
    const engines = new Set()
    for (const tunnel of [enclave, parent])
      tunnel.on('connectionClosed', (summary) => engines.add(summary.engine))
    for (let i = 0; i < 4; i++) {
      const socket = net.connect({ port: tcpPort, host: '127.0.0.1', allowHalfOpen: true })
      socket.on('error', () => {})
      const reply = collect(socket)
      const data = randomBytes(2 * 1024 * 1024 + i)
      socket.end(data)
      assert.equal(sha(await reply), sha(data))
      socket.destroy()
    }
    await waitUntil(() => parent.stats().active === 0 && enclave.stats().active === 0)
    assert.deepEqual([...engines], ['splice'])
    assert.equal(enclave.stats().errors + parent.stats().errors, 0)
  },
)

/** @param {() => boolean} check */
async function waitUntil(check) {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  assert.ok(check(), 'condition not reached within 10 s')
}
