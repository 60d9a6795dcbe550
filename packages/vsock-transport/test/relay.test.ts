import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import { join } from 'node:path'
import { countOpenFds, makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterEach, expect, it } from 'vitest'
import { type KernelRelayResult, kernelRelay } from '../src/index.js'
import { loadAddon, setAddonLoader } from '../src/native.js'

// kernelRelay on real Unix and TCP sockets (AF_VSOCK is the same code path on its fds; real vsock
// traffic runs in the QEMU guest suites). The tunnel package tests it end to end through forward().

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function pair(kind: 'unix' | 'tcp'): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true })
  let target: net.NetConnectOpts
  if (kind === 'unix') {
    const dir = makeTempDir('relay-')
    cleanups.push(dir.remove)
    const path = join(dir.path, 's.sock')
    server.listen(path)
    target = { path, allowHalfOpen: true }
  } else {
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    target = { port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true }
  }
  if (!server.listening) await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const client = net.connect(target)
  const [[serverSide]] = await Promise.all([accepted, once(client, 'connect')])
  server.close()
  for (const s of [client, serverSide]) s.on('error', () => {})
  cleanups.push(() => {
    client.destroy()
    serverSide.destroy()
  })
  return [client, serverSide]
}

function collect(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.once('end', () => resolve(Buffer.concat(chunks)))
  })
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

function start(a: net.Socket, b: net.Socket) {
  let settle!: (result: KernelRelayResult) => void
  const done = new Promise<KernelRelayResult>((resolve) => {
    settle = resolve
  })
  const relay = kernelRelay(a, b, settle)
  if (typeof relay === 'string') throw new Error(`kernelRelay refused: ${relay}`)
  return { relay, done }
}

it('relays Unix to TCP both ways with identical bytes and half-close, then closes its own fds', async () => {
  const before = countOpenFds()
  const [alice, a] = await pair('unix')
  const [b, bob] = await pair('tcp')
  const withSockets = countOpenFds()
  const { relay, done } = start(a, b)
  const up = randomBytes(6 * 1024 * 1024)
  const down = randomBytes(5 * 1024 * 1024)
  const atBob = collect(bob)
  const atAlice = collect(alice)
  alice.end(up)
  // bob sees alice's FIN (relayed as shutdown) while its own direction stays open.
  expect(sha(await atBob)).toBe(sha(up))
  bob.end(down)
  expect(sha(await atAlice)).toBe(sha(down))
  const result = await done
  expect(result).toEqual({ aToB: up.length, bToA: down.length, cancelled: false })
  expect(relay.stats()).toMatchObject({ aToB: up.length, bToA: down.length })
  // The relay's dups and pipes are gone: only the four sockets remain until they are destroyed.
  expect(countOpenFds()).toBeLessThanOrEqual(withSockets)
  for (const s of [alice, a, b, bob]) s.destroy()
  await waitFor(() => countOpenFds() <= before, { what: 'every fd to close' })
}, 30_000)

it('cancel() stops at once, reports cancelled, and leaves the sockets to the caller', async () => {
  const [alice, a] = await pair('tcp')
  const [b, bob] = await pair('tcp')
  const withSockets = countOpenFds()
  const { relay, done } = start(a, b)
  const atBob = collect(bob)
  alice.write('before cancel')
  await waitFor(() => relay.stats().aToB === 13, { what: 'the first bytes' })
  relay.cancel()
  relay.cancel()
  expect(countOpenFds()).toBeLessThanOrEqual(withSockets)
  const result = await done
  expect(result).toMatchObject({ aToB: 13, bToA: 0, cancelled: true })
  expect(result.error).toBeUndefined()
  b.end()
  expect((await atBob).toString()).toBe('before cancel')
})

it('reports a failed system call with the socket it failed on', async () => {
  const [alice, a] = await pair('tcp')
  const [b, bob] = await pair('tcp')
  const { done } = start(a, b)
  bob.resetAndDestroy()
  // Writing towards b now fails (EPIPE or ECONNRESET): a bounded stream of bytes until it does.
  let finished = false
  void done.then(() => {
    finished = true
  })
  const chunk = Buffer.alloc(64 * 1024)
  for (let i = 0; i < 1024 && !finished; i++) {
    if (!alice.write(chunk)) {
      await Promise.race([new Promise((resolve) => alice.once('drain', resolve)), done])
    }
  }
  const result = await done
  expect(result.cancelled).toBe(false)
  expect(result.side).toBe('b')
  expect(['EPIPE', 'ECONNRESET']).toContain(result.error?.code)
})

it('refuses, touching nothing, a socket with bytes JavaScript has buffered or that is gone', async () => {
  const [alice, a] = await pair('tcp')
  const [b, bob] = await pair('tcp')
  alice.write('unread')
  await waitFor(() => a.readableLength > 0, { what: 'bytes in the stream buffer' })
  expect(kernelRelay(a, b, () => {})).toBe('buffered')
  // Untouched: the stream still reads normally.
  expect(a.read()?.toString()).toBe('unread')
  b.destroy()
  expect(kernelRelay(a, b, () => {})).toBe('not-connected')
  bob.destroy()
})

it('refuses when the addon has no relay (an older build), so the caller keeps its stream path', async () => {
  const real = loadAddon()
  const restore = setAddonLoader(() => ({ ...real, relay: undefined }) as unknown as typeof real)
  cleanups.push(restore)
  const [, a] = await pair('tcp')
  const [b] = await pair('tcp')
  expect(kernelRelay(a, b, () => {})).toBe('addon')
})
