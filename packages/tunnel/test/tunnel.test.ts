import { spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { encodeOriginalDestination, OriginalDestinationDecoder } from '@enclave/protocol'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type ConnectionSummary,
  forward,
  InvalidOptionsError,
  ListenFailedError,
  readPrefix,
  type Tunnel,
  type TunnelOptions,
} from '../src/index.js'
import { dial, echoServer, hungUp, readAll, roundTrip, tcpServer } from './sockets.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function start(options: TunnelOptions): Promise<Tunnel> {
  const tunnel = await forward(options)
  cleanups.push(() => tunnel.close({ drainTimeoutMs: 0 }))
  return tunnel
}

async function echo(): Promise<Awaited<ReturnType<typeof echoServer>>> {
  const server = await echoServer()
  cleanups.push(server.close)
  return server
}

function closedConnections(tunnel: Tunnel): ConnectionSummary[] {
  const seen: ConnectionSummary[] = []
  tunnel.on('connectionClosed', (summary) => seen.push(summary))
  return seen
}

describe('forward: relaying', () => {
  it('relays both ways between TCP endpoints and counts the bytes', async () => {
    const target = await echo()
    const tunnel = await start({ from: 'tcp://127.0.0.1:0', to: target.url })
    const events: string[] = []
    tunnel.on('connection', () => events.push('connection'))
    tunnel.on('connected', () => events.push('connected'))
    tunnel.on('connectionClosed', () => events.push('connectionClosed'))
    const payload = Buffer.alloc(3 * 1024 * 1024, 7)
    const reply = await roundTrip(tunnel.address, payload)
    expect(reply.equals(payload)).toBe(true)
    await waitFor(() => tunnel.stats().active === 0, { what: 'the connection to close' })
    expect(tunnel.stats()).toEqual({
      active: 0,
      total: 1,
      refused: 0,
      errors: 0,
      bytesIn: payload.length,
      bytesOut: payload.length,
    })
    expect(events).toEqual(['connection', 'connected', 'connectionClosed'])
  })

  it('listens on a Unix socket and dials a Unix socket', async () => {
    const dir = makeTempDir()
    cleanups.push(dir.remove)
    const targetPath = join(dir.path, 'target.sock')
    const target = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
    target.listen(targetPath)
    await once(target, 'listening')
    cleanups.push(() => new Promise((resolve) => target.close(resolve)))
    const tunnel = await start({ from: `unix://${join(dir.path, 'in.sock')}`, to: `unix://${targetPath}` })
    expect(tunnel.address).toBe(`unix://${join(dir.path, 'in.sock')}`)
    const client = net.connect(join(dir.path, 'in.sock'))
    const reply = readAll(client)
    client.end('over unix')
    expect((await reply).toString()).toBe('over unix')
  })

  it('relays from a net.Server the caller created, and closes it on close()', async () => {
    const target = await echo()
    const server = net.createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const tunnel = await forward({ from: server, to: target.url })
    expect(tunnel.address).toBe(`tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`)
    expect((await roundTrip(tunnel.address, 'own server')).toString()).toBe('own server')
    await tunnel.close()
    expect(server.listening).toBe(false)
  })

  it('keeps the reply direction open after the client half-closes', async () => {
    const target = await tcpServer((socket) => {
      const received: Buffer[] = []
      socket.on('data', (chunk: Buffer) => received.push(chunk))
      socket.on('end', async () => {
        // Answer only after the client's FIN has arrived through the tunnel.
        await sleep(50)
        socket.end(`got ${Buffer.concat(received).toString()}`)
      })
    })
    cleanups.push(target.close)
    const tunnel = await start({ from: 'tcp://127.0.0.1:0', to: target.url })
    const reply = await roundTrip(tunnel.address, 'question')
    expect(reply.toString()).toBe('got question')
  })

  it('keeps the request direction open after the target half-closes', async () => {
    let receivedByTarget: Promise<Buffer> | undefined
    const target = await tcpServer((socket) => {
      socket.end('banner then done')
      receivedByTarget = readAll(socket)
    })
    cleanups.push(target.close)
    const tunnel = await start({ from: 'tcp://127.0.0.1:0', to: target.url })
    const client = await dial(tunnel.address)
    const received: Buffer[] = []
    client.on('data', (chunk: Buffer) => received.push(chunk))
    await once(client, 'end')
    expect(Buffer.concat(received).toString()).toBe('banner then done')
    // The client can still send after the target's FIN reached it.
    client.end('late upload')
    await waitFor(() => receivedByTarget, { what: 'the target connection' })
    expect((await receivedByTarget!).toString()).toBe('late upload')
    await waitFor(() => tunnel.stats().active === 0, { what: 'the connection to close' })
    expect(tunnel.stats().errors).toBe(0)
  })

  it('bounds memory with a slow reader: reading stops while the target does not read', async () => {
    let targetSocket: net.Socket | undefined
    const target = await tcpServer((socket) => {
      targetSocket = socket
      socket.pause()
    })
    cleanups.push(target.close)
    const tunnel = await start({ from: 'tcp://127.0.0.1:0', to: target.url })
    const client = await dial(tunnel.address)
    const total = 128 * 1024 * 1024
    const chunk = Buffer.alloc(256 * 1024, 1)
    let sent = 0
    const pump = async (): Promise<void> => {
      while (sent < total) {
        sent += chunk.length
        if (!client.write(chunk)) await once(client, 'drain')
      }
      client.end()
    }
    const pumping = pump()
    const baseline = process.memoryUsage().arrayBuffers
    // Wait for the tunnel's intake to stop growing: the target's kernel buffer is full.
    let last = -1
    await waitFor(
      async () => {
        const now = tunnel.stats().bytesIn
        const stable = now === last && now > 0
        last = now
        await sleep(200)
        return stable
      },
      { timeoutMs: 20_000, what: 'the relay to stall' },
    )
    const stalledAt = tunnel.stats().bytesIn
    // Kernel socket buffers plus the tunnel's one high-water mark; far from the 128 MiB offered.
    expect(stalledAt).toBeLessThan(48 * 1024 * 1024)
    expect(sent).toBeLessThan(total)
    expect(process.memoryUsage().arrayBuffers - baseline).toBeLessThan(64 * 1024 * 1024)
    // Once the reader catches up everything arrives.
    let received = 0
    targetSocket!.on('data', (data: Buffer) => {
      received += data.length
    })
    targetSocket!.resume()
    await pumping
    await waitFor(() => received === total, { timeoutMs: 30_000, what: 'all bytes at the target' })
  })
})

describe('forward: failures stay contained', () => {
  it('counts a refused target as an error and serves the next connection', async () => {
    const dir = makeTempDir()
    cleanups.push(dir.remove)
    const targetPath = join(dir.path, 'later.sock')
    const tunnel = await start({ from: 'tcp://127.0.0.1:0', to: `unix://${targetPath}` })
    const closed = closedConnections(tunnel)
    const first = await dial(tunnel.address)
    await hungUp(first)
    await waitFor(() => closed.length === 1, { what: 'the failed connection to be reported' })
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_CONNECT_FAILED')
    expect(tunnel.stats().errors).toBe(1)
    // The target appears: the same tunnel now relays.
    const target = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
    target.listen(targetPath)
    await once(target, 'listening')
    cleanups.push(() => new Promise((resolve) => target.close(resolve)))
    expect((await roundTrip(tunnel.address, 'second')).toString()).toBe('second')
    expect(tunnel.stats()).toMatchObject({ total: 2, errors: 1 })
  })

  it('times out a TCP target whose accept queue is full', async () => {
    // A listener that never accepts, with a backlog of one that we fill: the kernel then drops
    // the tunnel's SYNs and its connect hangs. Python, because Node always accepts.
    const listener = spawn('python3', [
      '-c',
      'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)',
    ])
    cleanups.push(() => listener.kill('SIGKILL'))
    const [line] = (await once(listener.stdout!, 'data')) as [Buffer]
    const port = Number(line.toString().trim())
    const filler = net.connect(port, '127.0.0.1')
    filler.on('error', () => {})
    await once(filler, 'connect')
    cleanups.push(() => filler.destroy())
    const tunnel = await start({
      from: 'tcp://127.0.0.1:0',
      to: `tcp://127.0.0.1:${port}`,
      connectTimeoutMs: 500,
    })
    const closed = closedConnections(tunnel)
    const client = await dial(tunnel.address)
    await hungUp(client)
    await waitFor(() => closed.length === 1, { what: 'the timed-out connection to be reported' })
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_CONNECT_TIMEOUT')
    expect(tunnel.stats()).toMatchObject({ active: 0, errors: 1 })
  })

  it('times out a target that never completes the connection', async () => {
    const dir = makeTempDir()
    cleanups.push(dir.remove)
    // A hybrid-vsock endpoint that accepts the Unix connection but never answers CONNECT.
    const silent = net.createServer((socket) => socket.on('error', () => {}).resume())
    const path = join(dir.path, 'hv.sock')
    silent.listen(path)
    await once(silent, 'listening')
    cleanups.push(() => new Promise((resolve) => silent.close(resolve)))
    const tunnel = await start({
      from: 'tcp://127.0.0.1:0',
      to: `hvsock://${path}:5000`,
      connectTimeoutMs: 300,
    })
    const closed = closedConnections(tunnel)
    const client = await dial(tunnel.address)
    await hungUp(client)
    await waitFor(() => closed.length === 1, { what: 'the timed-out connection to be reported' })
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_CONNECT_TIMEOUT')
    expect(closed[0]!.error?.message).toContain('connectTimeoutMs')
  })

  it('times out a resolver that waits for a header that never comes', async () => {
    const target = await echo()
    const tunnel = await start({
      from: 'tcp://127.0.0.1:0',
      to: async (inbound, { signal }) => {
        await readPrefix(inbound, () => undefined, { signal })
        return { address: target.url }
      },
      resolveTimeoutMs: 200,
    })
    const closed = closedConnections(tunnel)
    const client = await dial(tunnel.address)
    await hungUp(client)
    await waitFor(() => closed.length === 1, { what: 'the timed-out connection to be reported' })
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_RESOLVE_TIMEOUT')
  })

  it('closes a connection idle in both directions', async () => {
    const target = await echo()
    const tunnel = await start({ from: 'tcp://127.0.0.1:0', to: target.url, idleTimeoutMs: 300 })
    const closed = closedConnections(tunnel)
    const client = await dial(tunnel.address)
    client.write('ping')
    await once(client, 'data')
    await hungUp(client)
    await waitFor(() => closed.length === 1, { what: 'the idle connection to be reported' })
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_IDLE_TIMEOUT')
    expect(closed[0]!.bytesIn).toBe(4)
  })

  it('refuses connections beyond maxConnections and counts them', async () => {
    const target = await echo()
    const tunnel = await start({ from: 'tcp://127.0.0.1:0', to: target.url, maxConnections: 2 })
    const refused: unknown[] = []
    tunnel.on('refused', (event) => refused.push(event.error.code))
    const held = [await dial(tunnel.address), await dial(tunnel.address)]
    await waitFor(() => tunnel.stats().active === 2, { what: 'two active connections' })
    const third = await dial(tunnel.address)
    await hungUp(third)
    expect(refused).toEqual(['ENCLAVE_TUNNEL_MAX_CONNECTIONS'])
    expect(tunnel.stats()).toMatchObject({ active: 2, refused: 1, total: 2 })
    // The held connections still work, and a slot that frees up is usable again.
    held[0]!.write('still fine')
    const [data] = (await once(held[0]!, 'data')) as [Buffer]
    expect(data.toString()).toBe('still fine')
    held[1]!.end()
    await waitFor(() => tunnel.stats().active === 1, { what: 'a slot to free up' })
    expect((await roundTrip(tunnel.address, 'after')).toString()).toBe('after')
    held[0]!.destroy()
  })

  it('survives a peer that resets mid-stream; other connections are undisturbed', async () => {
    let targetClosed = 0
    const target = await tcpServer((socket) => {
      socket.pipe(socket)
      socket.on('close', () => {
        targetClosed += 1
      })
    })
    cleanups.push(target.close)
    const tunnel = await start({ from: 'tcp://127.0.0.1:0', to: target.url })
    const closed = closedConnections(tunnel)
    const steady = await dial(tunnel.address)
    const doomed = await dial(tunnel.address)
    doomed.write(Buffer.alloc(100_000, 2))
    await once(doomed, 'data')
    doomed.resetAndDestroy()
    await waitFor(() => closed.length === 1 && targetClosed === 1, { what: 'the reset to propagate' })
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_SOCKET_ERROR')
    const reply = readAll(steady)
    steady.end('steady')
    expect((await reply).toString()).toBe('steady')
  })

  it('drops a malformed transparent header with a typed error; good headers still work', async () => {
    const target = await echo()
    const tunnel = await start({
      from: 'tcp://127.0.0.1:0',
      to: async (inbound, { signal }) => {
        const decoder = new OriginalDestinationDecoder()
        const { value, rest } = await readPrefix(
          inbound,
          (chunk) => {
            const destination = decoder.push(chunk)
            return destination ? { value: destination, rest: decoder.remaining() } : undefined
          },
          { signal },
        )
        return { address: `tcp://${value.host}:${value.port}`, preamble: rest }
      },
    })
    const closed = closedConnections(tunnel)
    const bad = await dial(tunnel.address)
    bad.write(Buffer.from([0x05, 1, 2, 3, 4, 5, 6, 7]))
    await hungUp(bad)
    await waitFor(() => closed.length === 1, { what: 'the malformed header to be reported' })
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_RESOLVE_FAILED')
    expect((closed[0]!.error!.cause as { code?: string }).code).toBe('ENCLAVE_PROTOCOL_MALFORMED_HEADER')
    // The header and the first payload bytes in one write: the payload after the header is relayed.
    const header = encodeOriginalDestination({ host: '127.0.0.1', port: target.port })
    const reply = await roundTrip(tunnel.address, Buffer.concat([header, Buffer.from('payload')]))
    expect(reply.toString()).toBe('payload')
  })

  it('reports a peer that closes in the middle of its header', async () => {
    const tunnel = await start({
      from: 'tcp://127.0.0.1:0',
      to: async (inbound, { signal }) => {
        await readPrefix(inbound, () => undefined, { signal })
        return { address: 'tcp://127.0.0.1:1' }
      },
    })
    const closed = closedConnections(tunnel)
    const client = await dial(tunnel.address)
    client.end(Buffer.from([4, 1, 2]))
    await waitFor(() => closed.length === 1, { what: 'the truncated header to be reported' })
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_PREMATURE_CLOSE')
  })

  it('fails to listen on an address in use with ListenFailedError', async () => {
    const occupied = await echo()
    await expect(forward({ from: occupied.url, to: occupied.url })).rejects.toBeInstanceOf(ListenFailedError)
  })

  it('rejects bad options naming the option and its range', async () => {
    await expect(
      forward({ from: 'tcp://127.0.0.1:0', to: 'tcp://127.0.0.1:1', maxConnections: 0 }),
    ).rejects.toThrow(/maxConnections must be an integer from 1/)
    await expect(
      forward({ from: 'tcp://127.0.0.1:0', to: 'tcp://127.0.0.1:1', idleTimeoutMs: -1 }),
    ).rejects.toBeInstanceOf(InvalidOptionsError)
  })
})

describe('forward: close and drain', () => {
  it('stops accepting, lets active connections finish, then resolves', async () => {
    const target = await echo()
    const tunnel = await forward({ from: 'tcp://127.0.0.1:0', to: target.url })
    const active = await dial(tunnel.address)
    active.write('a')
    await once(active, 'data')
    const closing = tunnel.close()
    expect(tunnel.state).toBe('closing')
    await expect(dial(tunnel.address)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    // The active connection still works while the tunnel drains.
    const reply = readAll(active)
    active.end('b')
    expect((await reply).toString()).toBe('b')
    await closing
    expect(tunnel.state).toBe('closed')
    expect(tunnel.stats()).toMatchObject({ active: 0, total: 1, errors: 0 })
  })

  it('cuts connections still open when the drain timeout passes', async () => {
    const target = await echo()
    const tunnel = await forward({ from: 'tcp://127.0.0.1:0', to: target.url, drainTimeoutMs: 200 })
    const closed = closedConnections(tunnel)
    const stuck = await dial(tunnel.address)
    stuck.write('x')
    await once(stuck, 'data')
    await tunnel.close()
    await hungUp(stuck)
    expect(stuck.readableEnded || stuck.destroyed).toBe(true)
    expect(closed[0]!.error?.code).toBe('ENCLAVE_TUNNEL_CLOSED')
    expect(tunnel.state).toBe('closed')
  })
})
