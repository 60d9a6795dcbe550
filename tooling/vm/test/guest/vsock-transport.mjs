// @ts-check
// Guest suite: the BUILT @enclave/vsock-transport on the real kernel interface (AF_VSOCK through
// vsock_loopback, CID 1 to CID 1). It checks what a Unix-socket stand-in cannot show: accept,
// half-close, backpressure, getpeername, the local CID, and the errno each failure really has on
// the virtio transport (a connect to a closed port is answered by a RST, i.e. ECONNRESET).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { afterEach, describe, test } from 'node:test'

import { packageDist, readAll, rejection, sha } from './_helpers.mjs'

const transport = await import(packageDist('vsock-transport'))
const { connect, listen, peerAddressOf, serverAddressOf, localCid, formatAddress, originalDestination } =
  transport

const LOCAL = 1

// Whatever a test leaves open is closed after it, so a failed test cannot keep the process alive.
/** @type {Set<{ destroy(): void } | { close(): void }>} */
const open = new Set()
afterEach(() => {
  for (const thing of open) {
    if ('destroy' in thing) thing.destroy()
    else thing.close()
  }
  open.clear()
})

/** @param {string} address @param {object} [options] @returns {Promise<import('node:net').Socket>} */
async function dial(address, options) {
  const socket = await connect(address, options)
  open.add(socket)
  return socket
}
const LIMIT = { timeout: 30_000 }
// Node's default (and the transport's) ends a socket's writable side when its readable side ends;
// half-close tests turn that off on both ends.
const HALF_OPEN = Object.freeze({ allowHalfOpen: true })

/**
 * A server on an ephemeral port, and the address clients dial (CID 1: the loopback transport).
 * @param {(socket: import('node:net').Socket) => void} onConnection
 * @param {object} [options]
 */
async function serve(onConnection, options = {}) {
  /** @type {import('node:net').Server} */
  const server = await listen('vsock://any:0', options, onConnection)
  open.add(server)
  server.on('connection', (socket) => open.add(socket))
  const bound = serverAddressOf(server)
  assert.ok(bound, 'serverAddressOf returned nothing for a vsock server')
  assert.equal(bound.scheme, 'vsock')
  assert.ok(Number.isInteger(bound.port) && bound.port > 0 && bound.port < 0xffffffff, `port ${bound.port}`)
  const address = `vsock://${LOCAL}:${bound.port}`
  const close = () => new Promise((resolve) => server.close(() => resolve(undefined)))
  return { server, address, port: bound.port, close }
}

describe('streams over AF_VSOCK (CID 1 to CID 1)', () => {
  test('echo: 1 MiB goes out and comes back unchanged', LIMIT, async () => {
    const { address, close } = await serve((socket) => socket.pipe(socket))
    const socket = await dial(address, { timeoutMs: 10_000 })
    const data = randomBytes(1024 * 1024)
    const received = readAll(socket)
    socket.end(data)
    assert.equal(sha(await received), sha(data))
    await close()
  })

  test('half-close, client first: the server reads to the end, then replies', LIMIT, async () => {
    const { address, close } = await serve(async (socket) => {
      const request = await readAll(socket)
      socket.end(`got ${request.length} bytes`)
    }, HALF_OPEN)
    const socket = await dial(address, HALF_OPEN)
    const reply = readAll(socket)
    socket.write('a'.repeat(100_000))
    socket.end()
    assert.equal((await reply).toString(), 'got 100000 bytes')
    await close()
  })

  test('half-close, server first: the client still writes after the server ended', LIMIT, async () => {
    /** @type {Promise<Buffer>} */
    let fromClient = Promise.resolve(Buffer.alloc(0))
    const { address, close } = await serve((socket) => {
      fromClient = readAll(socket)
      socket.end('bye')
    }, HALF_OPEN)
    const socket = await dial(address, HALF_OPEN)
    const fromServer = readAll(socket)
    assert.equal((await fromServer).toString(), 'bye')
    assert.equal(socket.writable, true, 'the client lost its writable side when the server ended')
    socket.end('still here')
    assert.equal((await fromClient).toString(), 'still here')
    await close()
  })

  test('backpressure: write() returns false, drain resumes, 16 MiB arrive intact', LIMIT, async () => {
    /** @type {(data: Buffer) => void} */
    let deliver = () => {}
    const delivered = new Promise((resolve) => {
      deliver = resolve
    })
    const { address, close } = await serve(async (socket) => {
      socket.pause()
      // Let the sender fill every buffer on the way before anything is read.
      await new Promise((resolve) => setTimeout(resolve, 1000))
      deliver(await readAll(socket))
      socket.end()
    })
    const socket = await dial(address)
    const data = randomBytes(16 * 1024 * 1024)
    let refused = 0
    for (let at = 0; at < data.length; at += 64 * 1024) {
      if (!socket.write(data.subarray(at, at + 64 * 1024))) {
        refused++
        await once(socket, 'drain')
      }
    }
    socket.end()
    const received = /** @type {Buffer} */ (await delivered)
    assert.ok(refused > 0, 'write() never returned false: nothing pushed back')
    assert.equal(received.length, data.length)
    assert.equal(sha(received), sha(data))
    await close()
  })

  test('full duplex: 4 MiB each way at the same time', LIMIT, async () => {
    const down = randomBytes(4 * 1024 * 1024)
    /** @type {Promise<Buffer>} */
    let up = Promise.resolve(Buffer.alloc(0))
    const { address, close } = await serve((socket) => {
      up = readAll(socket)
      socket.end(down)
    })
    const socket = await dial(address)
    const upData = randomBytes(4 * 1024 * 1024)
    const got = readAll(socket)
    socket.end(upData)
    assert.equal(sha(await got), sha(down))
    assert.equal(sha(await up), sha(upData))
    await close()
  })

  test('50 concurrent connections are all accepted and served', LIMIT, async () => {
    const { address, close } = await serve((socket) => socket.pipe(socket))
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const socket = await dial(address)
        const reply = readAll(socket)
        socket.end(`connection ${i}`)
        return (await reply).toString()
      }),
    )
    assert.deepEqual(
      results,
      Array.from({ length: 50 }, (_, i) => `connection ${i}`),
    )
    await close()
  })
})

describe('addresses', () => {
  test('peerAddressOf: the dialled address on the client, getpeername on the server', LIMIT, async () => {
    /** @type {(socket: import('node:net').Socket) => void} */
    let accepted = () => {}
    const acceptedSocket = new Promise((resolve) => {
      accepted = resolve
    })
    const { address, port, close } = await serve((socket) => {
      accepted(socket)
      socket.resume()
      socket.on('end', () => socket.end())
    })
    const socket = await dial(address)
    assert.deepEqual(peerAddressOf(socket), { scheme: 'vsock', cid: LOCAL, port })
    const serverSide = /** @type {import('node:net').Socket} */ (await acceptedSocket)
    const peer = peerAddressOf(serverSide)
    console.log(`server sees peer ${peer ? formatAddress(peer) : 'undefined'}`)
    assert.equal(peer?.scheme, 'vsock')
    assert.equal(peer?.cid, LOCAL)
    assert.ok(Number.isInteger(peer?.port) && peer.port > 0 && peer.port !== port, `peer port ${peer?.port}`)
    socket.end()
    await once(socket, 'close')
    await close()
  })

  test('localCid: CID 1 when the loopback transport is the only one', () => {
    // With no guest or host transport, IOCTL_VM_SOCKETS_GET_LOCAL_CID answers VMADDR_CID_LOCAL;
    // inside an enclave it answers the enclave's CID.
    assert.equal(localCid(), LOCAL)
  })
})

describe('failures have the errno of the real transport', () => {
  test('a port nobody listens on: ConnectionRefusedError (the kernel says ECONNRESET)', LIMIT, async () => {
    const { port, close } = await serve(() => {})
    await close()
    const error = await rejection(() => connect(`vsock://${LOCAL}:${port}`, { timeoutMs: 10_000 }))
    console.log(`connect to a closed port: ${error.name} ${error.code} systemCode=${error.systemCode}`)
    assert.equal(error.code, 'ENCLAVE_VSOCK_CONNECTION_REFUSED', `${error.code}: ${error.message}`)
  })

  test('a CID with no transport (3, the parent): UnreachableError with ENODEV', LIMIT, async () => {
    const error = await rejection(() => connect('vsock://3:5000', { timeoutMs: 10_000 }))
    console.log(`connect to CID 3: ${error.name} ${error.code} systemCode=${error.systemCode}`)
    assert.equal(error.code, 'ENCLAVE_VSOCK_UNREACHABLE', `${error.code}: ${error.message}`)
    assert.equal(error.systemCode, 'ENODEV')
  })

  test('the host CID (2) is the loopback when no guest transport is loaded', LIMIT, async () => {
    // The kernel routes CID 2 to vsock_loopback when there is no virtio guest transport, so code
    // that dials the host reaches a listener in this guest.
    const { port, close } = await serve((socket) => socket.end('from the "host"'))
    const socket = await dial(`vsock://host:${port}`, { timeoutMs: 10_000 })
    assert.equal((await readAll(socket)).toString(), 'from the "host"')
    socket.end()
    await close()
  })

  test('listening twice on one port: AddressInUseError', LIMIT, async () => {
    const { port, close } = await serve(() => {})
    const error = await rejection(() => listen(`vsock://any:${port}`))
    assert.equal(error.code, 'ENCLAVE_VSOCK_ADDRESS_IN_USE', `${error.code}: ${error.message}`)
    await close()
  })

  test(
    'a peer that resets: vsock has no RST on close, so the other side sees an end, then EPIPE',
    LIMIT,
    async () => {
      const { address, close } = await serve((socket) => {
        socket.once('data', () => socket.resetAndDestroy())
      }, HALF_OPEN)
      const socket = await dial(address, HALF_OPEN)
      /** @type {any} */
      let error
      socket.on('error', (e) => {
        error = e
      })
      const ended = once(socket, 'end')
      socket.resume()
      socket.write('trigger')
      await ended
      // events.once would reject on the 'error' this write is expected to cause.
      const closed = new Promise((resolve) => socket.once('close', resolve))
      socket.write('after the reset')
      await closed
      console.log(`writing after the peer's reset: ${error?.code ?? 'no error'}`)
      assert.equal(error?.code, 'EPIPE')
      await close()
    },
  )

  test('a peer that destroys the socket: the other side sees an end, then ends too', LIMIT, async () => {
    const { address, close } = await serve((socket) => {
      socket.once('data', () => socket.destroy())
    })
    const socket = await dial(address)
    socket.resume()
    socket.write('trigger')
    await once(socket, 'end')
    socket.end()
    await once(socket, 'close')
    await close()
  })
})

describe('resources', () => {
  test('no file descriptor is left behind by connections, refusals and unreachable CIDs', LIMIT, async () => {
    const fds = () => readdirSync('/proc/self/fd').length
    const { address, port, close } = await serve((socket) => socket.pipe(socket))
    const before = fds()
    for (let i = 0; i < 30; i++) {
      const socket = await dial(address)
      const reply = readAll(socket)
      socket.end('x')
      await reply
      await new Promise((resolve) => socket.once('close', resolve))
    }
    const { port: closedPort, close: closeOther } = await serve(() => {})
    await closeOther()
    for (let i = 0; i < 30; i++) {
      await rejection(() => connect(`vsock://${LOCAL}:${closedPort}`))
      await rejection(() => connect(`vsock://3:${port}`))
    }
    // Closing is asynchronous in libuv; give the loop a moment before counting.
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal(fds(), before, 'file descriptors leaked')
    await close()
  })

  test('listening on a CID this machine does not have fails with a typed error', LIMIT, async () => {
    const error = await rejection(() => listen('vsock://3:0'))
    console.log(`listen on CID 3: ${error.name} ${error.code} systemCode=${error.systemCode}`)
    assert.match(String(error.code), /^ENCLAVE_VSOCK_/, `untyped: ${error.message}`)
  })

  test('listening on CID 1 itself (not any) accepts loopback connections', LIMIT, async () => {
    /** @type {import('node:net').Server} */
    const server = await listen('vsock://1:0', {}, (/** @type {import('node:net').Socket} */ socket) =>
      socket.end('bound to 1'),
    )
    open.add(server)
    const socket = await dial(`vsock://1:${serverAddressOf(server).port}`)
    assert.equal((await readAll(socket)).toString(), 'bound to 1')
  })

  test("a closed listener's port can be listened on again at once", LIMIT, async () => {
    const { port, close } = await serve(() => {})
    await close()
    /** @type {import('node:net').Server} */
    const again = await listen(`vsock://any:${port}`, {}, (/** @type {import('node:net').Socket} */ socket) =>
      socket.end('second life'),
    )
    open.add(again)
    const socket = await dial(`vsock://${LOCAL}:${port}`)
    assert.equal((await readAll(socket)).toString(), 'second life')
  })

  test(
    'originalDestination on a vsock socket is a typed refusal, and peerAddressOf survives close',
    LIMIT,
    async () => {
      const { address, close } = await serve((socket) => socket.end())
      const socket = await dial(address)
      const error = (() => {
        try {
          originalDestination(socket)
        } catch (e) {
          return /** @type {any} */ (e)
        }
        return undefined
      })()
      assert.equal(error?.code, 'ENCLAVE_VSOCK_UNSUPPORTED_SOCKET', `${error?.code}: ${error?.message}`)
      socket.resume()
      await new Promise((resolve) => socket.once('close', resolve))
      // The dialled address is remembered; nothing may throw once the fd is gone.
      assert.doesNotThrow(() => peerAddressOf(socket))
      await close()
    },
  )
})
