// The transport compliance checks: plain JavaScript with node:assert, so the same checks run
// under vitest (test/compliance/suite.ts, against src) and in a QEMU guest with plain Node
// (test/guest/run-vsock-guest.mjs, against the built dist). Every check listens, dials, and
// cleans up after itself; each takes a Target naming the API and the addresses to use.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'

const MiB = 1024 * 1024

/** Starts a server on target.listenAddress; returns it, the address to dial, and a cleanup. */
async function serve(target, onConnection, listenOptions = {}) {
  const accepted = new Set()
  const server = await target.api.listen(
    target.makeAddress(),
    { ...target.listenOptions, ...listenOptions },
    (s) => {
      accepted.add(s)
      s.once('close', () => accepted.delete(s))
      s.on('error', () => {})
      onConnection(s)
    },
  )
  const dial = target.dialAddressOf
    ? target.dialAddressOf(server)
    : target.api.formatAddress(target.api.serverAddressOf(server))
  const close = async () => {
    for (const s of accepted) s.destroy()
    if (server.listening) await new Promise((resolve) => server.close(() => resolve()))
  }
  return { server, dial, close }
}

function dialOptions(target, extra = {}) {
  return { timeoutMs: 20_000, ...target.connectOptions, ...extra }
}

/** Everything the stream yields until 'end'. Not `for await`: that destroys the socket, and half-close needs it open. */
function collect(stream) {
  return new Promise((resolve, reject) => {
    const chunks = []
    stream.on('data', (chunk) => chunks.push(chunk))
    stream.once('end', () => resolve(Buffer.concat(chunks)))
    stream.once('error', reject)
  })
}

const sha = (buf) => createHash('sha256').update(buf).digest('hex')

/** Writes `data` in chunks, waiting for 'drain' whenever write() returns false; then end(). */
async function writeAll(socket, data, chunkSize = 64 * 1024, onChunk = () => {}) {
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    const ok = socket.write(data.subarray(offset, offset + chunkSize))
    onChunk()
    if (!ok) await once(socket, 'drain')
  }
  socket.end()
}

/** 2 MiB out and back through an echo server, byte for byte. */
export async function echoRoundTrip(target) {
  const { dial, close } = await serve(target, (s) => s.pipe(s))
  try {
    const client = await target.api.connect(dial, dialOptions(target))
    const data = randomBytes(2 * MiB)
    const [, echoed] = await Promise.all([writeAll(client, data), collect(client)])
    assert.equal(echoed.length, data.length)
    assert.equal(sha(echoed), sha(data))
  } finally {
    await close()
  }
}

/** write() returns false while the peer does not read, within a bounded amount; 'drain' follows once it reads. */
export async function backpressure(target) {
  let serverSide
  const accepted = new Promise((resolve) => {
    serverSide = resolve
  })
  const { dial, close } = await serve(target, (s) => {
    s.pause()
    serverSide(s)
  })
  try {
    const client = await target.api.connect(dial, dialOptions(target))
    const peer = await accepted
    const chunk = Buffer.alloc(64 * 1024, 7)
    let written = 0
    let full = false
    // Kernel socket buffers plus the stream's highWaterMark hold a few MiB at most.
    for (let i = 0; i < 1024 && !full; i++) {
      full = !client.write(chunk)
      written += chunk.length
      if (!full) await new Promise((resolve) => setImmediate(resolve))
    }
    assert.ok(full, `write() never returned false after ${written} bytes to a peer that does not read`)
    assert.ok(written <= 64 * MiB, `${written} bytes were accepted before backpressure`)
    const drained = once(client, 'drain')
    let received = 0
    peer.on('data', (d) => {
      received += d.length
    })
    peer.resume()
    await drained
    client.end()
    await once(peer, 'end')
    assert.equal(received, written)
    client.destroy()
  } finally {
    await close()
  }
}

/** A slow reader: the writer honours backpressure, buffers stay bounded, every byte arrives. */
export async function slowReaderBoundedMemory(target) {
  const total = 8 * MiB
  let maxReadable = 0
  let receivedHash
  const done = new Promise((resolve, reject) => {
    receivedHash = { resolve, reject }
  })
  const { dial, close } = await serve(target, (s) => {
    const hash = createHash('sha256')
    let got = 0
    let sinceNap = 0
    s.on('data', (d) => {
      hash.update(d)
      got += d.length
      sinceNap += d.length
      maxReadable = Math.max(maxReadable, s.readableLength)
      if (sinceNap >= 256 * 1024) {
        sinceNap = 0
        s.pause()
        setTimeout(() => s.resume(), 2)
      }
    })
    s.on('end', () => receivedHash.resolve({ got, hex: hash.digest('hex') }))
    s.on('error', (err) => receivedHash.reject(err))
  })
  try {
    const client = await target.api.connect(dial, dialOptions(target))
    const data = randomBytes(total)
    let maxWritable = 0
    const chunkSize = 64 * 1024
    await writeAll(client, data, chunkSize, () => {
      maxWritable = Math.max(maxWritable, client.writableLength)
    })
    const result = await done
    assert.equal(result.got, total)
    assert.equal(result.hex, sha(data))
    assert.ok(
      maxWritable <= client.writableHighWaterMark + chunkSize,
      `writer buffered ${maxWritable} bytes (highWaterMark ${client.writableHighWaterMark})`,
    )
    assert.ok(maxReadable <= 4 * MiB, `reader buffered ${maxReadable} bytes`)
    client.destroy()
  } finally {
    await close()
  }
}

/** The client ends its side; the server, having read everything, still writes a reply. */
export async function halfCloseFromClient(target) {
  const { dial, close } = await serve(
    target,
    async (s) => {
      const body = await collect(s)
      s.end(`got ${body.length} ${sha(body)}`)
    },
    { allowHalfOpen: true },
  )
  try {
    const client = await target.api.connect(dial, dialOptions(target, { allowHalfOpen: true }))
    const data = randomBytes(256 * 1024)
    const reply = collect(client)
    await writeAll(client, data)
    assert.equal((await reply).toString(), `got ${data.length} ${sha(data)}`)
  } finally {
    await close()
  }
}

/** The server ends its side first; the client, having seen 'end', still writes and the server reads it. */
export async function halfCloseFromServer(target) {
  let fromClient
  const serverRead = new Promise((resolve, reject) => {
    fromClient = { resolve, reject }
  })
  const { dial, close } = await serve(
    target,
    (s) => {
      s.end('bye from server')
      collect(s).then(fromClient.resolve, fromClient.reject)
    },
    { allowHalfOpen: true },
  )
  try {
    const client = await target.api.connect(dial, dialOptions(target, { allowHalfOpen: true }))
    const greeting = await collect(client)
    assert.equal(greeting.toString(), 'bye from server')
    assert.ok(client.writable, 'client must stay writable after the server ended')
    const late = randomBytes(128 * 1024)
    await writeAll(client, late)
    const got = await serverRead
    assert.equal(sha(got), sha(late))
  } finally {
    await close()
  }
}

/** destroy() on one side closes the other; a closed server refuses new connections with a typed error. */
export async function closeSemantics(target) {
  let serverSocket
  const accepted = new Promise((resolve) => {
    serverSocket = resolve
  })
  const { server, dial, close } = await serve(target, (s) => serverSocket(s))
  try {
    const client = await target.api.connect(dial, dialOptions(target))
    const peer = await accepted
    const peerClosed = once(peer, 'close')
    let clientCloses = 0
    client.on('close', () => clientCloses++)
    client.destroy()
    await peerClosed
    assert.equal(peer.destroyed, true)
    await sleep(10)
    assert.equal(clientCloses, 1)
    await new Promise((resolve) => server.close(() => resolve()))
    assert.equal(server.listening, false)
    await assert.rejects(target.api.connect(dial, dialOptions(target)), (err) => {
      assert.equal(err.code, 'ENCLAVE_VSOCK_CONNECTION_REFUSED', `got ${err.code}: ${err.message}`)
      return true
    })
  } finally {
    await close()
  }
}

/** A signal aborted before connect rejects at once; aborted later it destroys the socket. */
export async function abortSignal(target) {
  const { dial, close } = await serve(target, (s) => s.resume())
  try {
    await assert.rejects(
      target.api.connect(dial, dialOptions(target, { signal: AbortSignal.abort() })),
      (err) => {
        assert.equal(err.code, 'ENCLAVE_VSOCK_ABORTED')
        return true
      },
    )
    const controller = new AbortController()
    const client = await target.api.connect(dial, dialOptions(target, { signal: controller.signal }))
    const errored = once(client, 'error')
    controller.abort()
    const [err] = await errored
    assert.equal(err.code, 'ENCLAVE_VSOCK_ABORTED')
    assert.equal(client.destroyed, true)
  } finally {
    await close()
  }
}

/** A listen signal closes the server; a signal aborted before listen rejects. */
export async function listenAbort(target) {
  await assert.rejects(
    target.api.listen(target.makeAddress(), { ...target.listenOptions, signal: AbortSignal.abort() }),
    (err) => {
      assert.equal(err.code, 'ENCLAVE_VSOCK_ABORTED')
      return true
    },
  )
  const controller = new AbortController()
  const server = await target.api.listen(target.makeAddress(), {
    ...target.listenOptions,
    signal: controller.signal,
  })
  assert.equal(server.listening, true)
  const closed = once(server, 'close')
  controller.abort()
  await closed
  assert.equal(server.listening, false)
}

/** timeoutMs limits connecting only: a connected socket outlives it. */
export async function timeoutOnlyCoversConnect(target) {
  const { dial, close } = await serve(target, (s) => s.pipe(s))
  try {
    // 2 s: long enough that a loaded machine cannot make the connect itself time out.
    const timeoutMs = 2000
    const client = await target.api.connect(dial, dialOptions(target, { timeoutMs }))
    await sleep(timeoutMs + 500)
    assert.equal(client.destroyed, false)
    client.end('still here')
    assert.equal((await collect(client)).toString(), 'still here')
  } finally {
    await close()
  }
}

/** peerAddressOf: the client knows whom it dialled; the server side matches target.checkServerPeer. */
export async function peerAddress(target) {
  let serverSide
  const accepted = new Promise((resolve) => {
    serverSide = resolve
  })
  const { dial, close } = await serve(target, (s) => serverSide(s))
  try {
    const client = await target.api.connect(dial, dialOptions(target))
    assert.deepEqual(target.api.peerAddressOf(client), target.api.parseAddress(dial))
    const peer = await accepted
    if (target.checkServerPeer) target.checkServerPeer(target.api.peerAddressOf(peer), client)
    client.destroy()
  } finally {
    await close()
  }
}

/** Every check, by name, in the order a runner should run them. */
export const checks = Object.freeze({
  echoRoundTrip,
  backpressure,
  slowReaderBoundedMemory,
  halfCloseFromClient,
  halfCloseFromServer,
  closeSemantics,
  abortSignal,
  listenAbort,
  timeoutOnlyCoversConnect,
  peerAddress,
})
