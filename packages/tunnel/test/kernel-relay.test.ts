import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import tls from 'node:tls'
import { countOpenFds, makeCa, makeLeaf, makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterEach, expect, it } from 'vitest'
import { forward, type Pipe, pipeConnection, SocketError } from '../src/index.js'
import { dial, echoServer } from './sockets.js'

// The kernel relay (splice on the event loop) and the stream relay must behave alike; each test
// here names the engine it expects, so a silent fallback cannot pass for the fast path.

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A connected pair of TCP sockets: [client side, server side]. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const client = net.connect({
    port: (server.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    allowHalfOpen: true,
  })
  client.on('error', () => {})
  const [[serverSide]] = await Promise.all([accepted, once(client, 'connect')])
  serverSide.on('error', () => {})
  server.close()
  cleanups.push(() => {
    client.destroy()
    serverSide.destroy()
  })
  return [client, serverSide]
}

/** alice ─ inbound ═ pipe ═ outbound ─ bob */
async function relayedPair(kernelRelay: boolean) {
  const [alice, inbound] = await socketPair()
  const [outbound, bob] = await socketPair()
  const pipe = pipeConnection(inbound, outbound, { kernelRelay })
  cleanups.push(() => pipe.destroy())
  return { alice, bob, inbound, outbound, pipe }
}

function digest(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Reads until the peer ends; resolves with everything received. */
function collect(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.once('end', () => resolve(Buffer.concat(chunks)))
  })
}

async function send(socket: net.Socket, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += 100_000) {
    if (!socket.write(data.subarray(at, at + 100_000))) await once(socket, 'drain')
  }
  socket.end()
}

for (const [kernelRelay, engine] of [
  [true, 'splice'],
  [false, 'stream'],
] as const) {
  it(`${engine}: moves identical bytes both ways at once, bulk and small, and reports them`, async () => {
    const { alice, bob, pipe } = await relayedPair(kernelRelay)
    expect(pipe.engine).toBe(engine)
    // Bulk (the kernel relay moves to splice) then small writes (back to read/write).
    const up = Buffer.concat([randomBytes(12 * 1024 * 1024), Buffer.from('tail')])
    const down = Buffer.concat([randomBytes(9 * 1024 * 1024 + 7), Buffer.from('x')])
    const atBob = collect(bob)
    const atAlice = collect(alice)
    await Promise.all([send(alice, up), send(bob, down)])
    const [gotUp, gotDown] = await Promise.all([atBob, atAlice])
    expect(digest(gotUp)).toBe(digest(up))
    expect(digest(gotDown)).toBe(digest(down))
    const result = await pipe.done
    expect(result).toEqual({ bytesIn: up.length, bytesOut: down.length })
  }, 60_000)

  it(`${engine}: half-close from the inbound side, the target keeps answering, then ends`, async () => {
    const { alice, bob, pipe } = await relayedPair(kernelRelay)
    expect(pipe.engine).toBe(engine)
    const atAlice = collect(alice)
    const atBob = collect(bob)
    alice.end('question')
    expect((await atBob).toString()).toBe('question')
    // alice's FIN reached bob; bob's direction is still open.
    bob.write('answer part 1, ')
    await sleep(20)
    bob.end('answer part 2')
    expect((await atAlice).toString()).toBe('answer part 1, answer part 2')
    expect(await pipe.done).toEqual({ bytesIn: 8, bytesOut: 28 })
  })

  it(`${engine}: half-close from the target side while the client keeps sending`, async () => {
    const { alice, bob, pipe } = await relayedPair(kernelRelay)
    expect(pipe.engine).toBe(engine)
    const atAlice = collect(alice)
    const atBob = collect(bob)
    bob.end('banner')
    expect((await atAlice).toString()).toBe('banner')
    const payload = randomBytes(3 * 1024 * 1024)
    await send(alice, payload)
    expect(digest(await atBob)).toBe(digest(payload))
    expect(await pipe.done).toEqual({ bytesIn: payload.length, bytesOut: 6 })
  }, 30_000)

  it(`${engine}: a target that resets mid-stream fails the pair on the outbound side`, async () => {
    const { alice, bob, pipe } = await relayedPair(kernelRelay)
    expect(pipe.engine).toBe(engine)
    let atBob = 0
    bob.on('data', (chunk: Buffer) => {
      atBob += chunk.length
      if (atBob > 1024 * 1024) bob.resetAndDestroy()
    })
    const chunk = Buffer.alloc(64 * 1024, 3)
    // Writes until the relay cuts alice off (bounded: 256 MiB at most).
    for (let i = 0; i < 4096 && !alice.destroyed && !alice.writableEnded; i++) {
      if (!alice.write(chunk)) {
        // The relay answers bob's reset by cutting alice: that ends the loop, not the test.
        await new Promise<void>((resolve) => {
          alice.once('drain', resolve)
          alice.once('close', resolve)
        })
      }
    }
    const result = await pipe.done
    expect(result.error).toBeInstanceOf(SocketError)
    expect((result.error as SocketError).side).toBe('outbound')
  }, 30_000)
}

it('splice: bytes the inbound socket buffered before the relay started go first, in order', async () => {
  const [alice, inbound] = await socketPair()
  const [outbound, bob] = await socketPair()
  alice.write('early bytes, ')
  // They sit in the inbound stream's buffer (nobody reads it yet).
  await waitFor(() => inbound.readableLength > 0, { what: 'the early bytes in the buffer' })
  const pipe = pipeConnection(inbound, outbound, { kernelRelay: true })
  expect(pipe.engine).toBe('splice')
  const atBob = collect(bob)
  alice.end('late bytes')
  expect((await atBob).toString()).toBe('early bytes, late bytes')
  bob.end()
  expect((await pipe.done).bytesIn).toBe(23)
})

it('falls back to streams while a socket still has bytes queued to write, and loses none', async () => {
  const [alice, inbound] = await socketPair()
  const [outbound, bob] = await socketPair()
  bob.pause()
  // More than the kernel takes while bob does not read: the rest stays queued in outbound.
  const queued = randomBytes(32 * 1024 * 1024)
  outbound.write(queued)
  expect(outbound.writableLength).toBeGreaterThan(0)
  const pipe = pipeConnection(inbound, outbound, { kernelRelay: true })
  expect(pipe.engine).toBe('stream')
  const atBob = collect(bob)
  bob.resume()
  alice.end('after')
  const got = await atBob
  expect(digest(got)).toBe(digest(Buffer.concat([queued, Buffer.from('after')])))
  bob.end()
  expect((await pipe.done).bytesIn).toBe(5)
}, 30_000)

it('falls back to streams when a peer already sent its FIN', async () => {
  const [alice, inbound] = await socketPair()
  const [outbound, bob] = await socketPair()
  alice.end('all at once')
  // The stream has read the bytes and the FIN ('end' itself waits until someone reads).
  const state = (inbound as unknown as { _readableState: { ended: boolean } })._readableState
  await waitFor(() => state.ended && inbound.readableLength === 11, { what: 'the bytes and the FIN' })
  const pipe = pipeConnection(inbound, outbound, { kernelRelay: true })
  expect(pipe.engine).toBe('stream')
  const atBob = collect(bob)
  expect((await atBob).toString()).toBe('all at once')
  bob.end('ok')
  expect(await pipe.done).toEqual({ bytesIn: 11, bytesOut: 2 })
})

it('splice: a slow reader stalls the relay with bounded buffering; all arrives once it reads', async () => {
  const { alice, bob, pipe } = await relayedPair(true)
  expect(pipe.engine).toBe('splice')
  bob.pause()
  const total = 128 * 1024 * 1024
  const chunk = Buffer.alloc(256 * 1024, 5)
  let sent = 0
  const pumping = (async () => {
    while (sent < total) {
      sent += chunk.length
      if (!alice.write(chunk)) await once(alice, 'drain')
    }
    alice.end()
  })()
  let last = -1
  await waitFor(
    async () => {
      const now = pipe.bytes().bytesIn
      const stable = now === last && now > 0
      last = now
      await sleep(200)
      return stable
    },
    { timeoutMs: 20_000, what: 'the relay to stall' },
  )
  // Kernel socket buffers plus one pipe; far from the 128 MiB offered.
  expect(pipe.bytes().bytesIn).toBeLessThan(48 * 1024 * 1024)
  expect(sent).toBeLessThan(total)
  let received = 0
  bob.on('data', (data: Buffer) => {
    received += data.length
  })
  bob.resume()
  await pumping
  await waitFor(() => received === total, { timeoutMs: 30_000, what: 'all bytes at bob' })
  bob.end()
  expect(await pipe.done).toEqual({ bytesIn: total, bytesOut: 0 })
}, 60_000)

it('splice: idle timeout cuts a pair that moves nothing, and not one that keeps moving', async () => {
  const busy = await relayedPair(true)
  const [alice, inbound] = await socketPair()
  const [outbound, bob] = await socketPair()
  const idle: Pipe = pipeConnection(inbound, outbound, { kernelRelay: true, idleTimeoutMs: 300 })
  expect(idle.engine).toBe('splice')
  const busyPipe = pipeConnection(busy.inbound, busy.outbound, { kernelRelay: true, idleTimeoutMs: 300 })
  busy.bob.resume()
  // A keep-alive every 50 ms keeps one pair under its idle timeout.
  let ticks = 0
  const timer = setInterval(() => {
    ticks += 1
    busy.alice.write('.')
  }, 50)
  const result = await idle.done
  clearInterval(timer)
  expect(result.error?.code).toBe('ENCLAVE_TUNNEL_IDLE_TIMEOUT')
  expect(ticks).toBeGreaterThan(0)
  expect(busy.inbound.destroyed).toBe(false)
  busyPipe.destroy()
  alice.destroy()
  bob.destroy()
})

it('splice: many bulk connections through a tunnel leave no file descriptor behind', async () => {
  const target = await echoServer()
  cleanups.push(target.close)
  const tunnel = await forward({ from: 'tcp://127.0.0.1:0', to: target.url, kernelRelay: true })
  cleanups.push(() => tunnel.close({ drainTimeoutMs: 0 }))
  const engines = new Set<string | undefined>()
  tunnel.on('connectionClosed', (summary) => engines.add(summary.engine))
  const payload = randomBytes(256 * 1024)
  const echo = async (): Promise<void> => {
    const socket = await dial(tunnel.address)
    const reply = collect(socket)
    await send(socket, payload)
    const got = await reply
    socket.destroy()
    if (!got.equals(payload))
      throw new Error(`echo returned ${got.length} bytes, not the ${payload.length} sent`)
  }
  await echo()
  await waitFor(() => tunnel.stats().active === 0, { what: 'the warm-up connection to close' })
  const before = countOpenFds()
  // 50 rounds of 8 concurrent 256 KiB echoes: every relay creates its pipes (splice mode).
  for (let round = 0; round < 50; round++) await Promise.all(Array.from({ length: 8 }, echo))
  await waitFor(() => tunnel.stats().active === 0 && target.sockets.size === 0, {
    timeoutMs: 30_000,
    what: 'every connection to close',
  })
  expect(countOpenFds()).toBeLessThanOrEqual(before)
  expect(tunnel.stats()).toMatchObject({ total: 401, errors: 0, bytesIn: 401 * payload.length })
  expect([...engines]).toEqual(['splice'])
}, 120_000)

it('rejects a kernelRelay option that is not a boolean, naming it', async () => {
  await expect(
    forward({ from: 'tcp://127.0.0.1:0', to: 'tcp://127.0.0.1:9', kernelRelay: 'yes' as unknown as boolean }),
  ).rejects.toThrow(/option kernelRelay must be true or false/)
})

it('a TLS-terminated socket takes the stream relay: its fd carries ciphertext, not the bytes', async () => {
  const dir = makeTempDir('enclave-tunnel-tls-')
  cleanups.push(() => dir.remove())
  const ca = makeCa(dir.path, 'ca')
  const leaf = makeLeaf(dir.path, 'server', ca, { san: 'IP:127.0.0.1' })
  const tlsServer = tls.createServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key) })
  tlsServer.listen(0, '127.0.0.1')
  await once(tlsServer, 'listening')
  cleanups.push(() => tlsServer.close())
  const accepted = once(tlsServer, 'secureConnection') as Promise<[tls.TLSSocket]>
  const alice = tls.connect({
    port: (tlsServer.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    ca: readFileSync(ca.cert),
  })
  alice.on('error', () => {})
  cleanups.push(() => alice.destroy())
  const [[inbound]] = await Promise.all([accepted, once(alice, 'secureConnect')])
  const [outbound, bob] = await socketPair()
  const pipe = pipeConnection(inbound, outbound, { kernelRelay: true })
  cleanups.push(() => pipe.destroy())
  expect(pipe.engine).toBe('stream')
  const atBob = collect(bob)
  alice.end('plaintext through TLS termination')
  expect((await atBob).toString()).toBe('plaintext through TLS termination')
})
