import { createHash } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import { PassThrough } from 'node:stream'
import { type BridgeSession, type BridgeSettings, connectBridge } from '@enclave/bridge-enclave'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { listen } from '@enclave/vsock-transport'
import {
  type BridgeHost,
  type BridgeHostOptions,
  createBridgeHost,
  type HandshakeFailedError,
} from '../src/index.js'

export const ENCLAVE_CID = 16

/** A dev-mode world: a temp dir standing for vsock, with host (CID 3) and enclave (CID 16) views. */
export function devWorld() {
  const tmp = makeTempDir('bridge-')
  return {
    dir: tmp.path,
    hostDev: { dir: tmp.path, cid: 3 },
    enclaveDev: { dir: tmp.path, cid: ENCLAVE_CID },
    remove: tmp.remove,
  }
}

/** Collects what the host writes as enclave logs. */
export function logCapture() {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  return { out, text: () => Buffer.concat(chunks).toString('utf8'), writes: chunks }
}

/** Injected dependencies of createBridgeHost (a fake peer CID source, a fake resolver). */
export type HostDeps = NonNullable<Parameters<typeof createBridgeHost>[1]>

export async function startHost(
  world: ReturnType<typeof devWorld>,
  options: BridgeHostOptions = {},
  deps: HostDeps = {},
): Promise<{ host: BridgeHost; logs: ReturnType<typeof logCapture> }> {
  const logs = logCapture()
  const host = createBridgeHost({ dev: world.hostDev, logOutput: logs.out, env: {}, ...options }, deps)
  await host.start()
  return { host, logs }
}

export function settings(overrides: Partial<BridgeSettings> = {}): BridgeSettings {
  return {
    appName: 'test',
    watchdog: { enclaveId: crypto.randomUUID(), intervalMs: 60_000 },
    logger: { level: '' },
    servers: [],
    clients: [],
    ...overrides,
  }
}

/** A vsock (dev) server inside the "enclave" that runs `handler` per connection. */
export async function enclaveServer(
  world: ReturnType<typeof devWorld>,
  port: number,
  handler: (socket: Socket) => void,
): Promise<Server> {
  return listen(`vsock://any:${port}`, { dev: world.enclaveDev, allowHalfOpen: true }, handler)
}

/** Echoes every byte back and ends when the peer ends. */
export function echo(socket: Socket): void {
  socket.on('error', () => {})
  socket.pipe(socket)
}

export function close(server: { close(cb?: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

/**
 * Deterministic pseudo-random bytes: `mib` MiB from a seed, in 1 MiB chunks. Each chunk carries
 * its index, so a lost, repeated or reordered chunk changes the hash.
 */
export function* pattern(mib: number, seed: number): Generator<Buffer> {
  const base = Buffer.allocUnsafe(1024 * 1024)
  let block = createHash('sha256').update(`seed-${seed}`).digest()
  for (let off = 0; off < base.length; off += 32) {
    block = createHash('sha256').update(block).digest()
    block.copy(base, off)
  }
  for (let i = 0; i < mib; i++) {
    const chunk = Buffer.from(base)
    chunk.writeUInt32BE(i, 0)
    chunk.writeUInt32BE(i, 512 * 1024)
    yield chunk
  }
}

export function sha256Of(chunks: Iterable<Buffer>): string {
  const h = createHash('sha256')
  for (const c of chunks) h.update(c)
  return h.digest('hex')
}

/** Writes all chunks with backpressure, then ends. */
export async function writeAll(socket: Socket, chunks: Iterable<Buffer>): Promise<void> {
  for (const c of chunks) {
    if (!socket.write(c)) {
      await new Promise<void>((resolve, reject) => {
        const onErr = (e: Error) => reject(e)
        socket.once('error', onErr)
        socket.once('drain', () => {
          socket.off('error', onErr)
          resolve()
        })
      })
    }
  }
  socket.end()
}

/** Hashes everything the socket sends until it ends. */
export function hashUntilEnd(socket: Socket): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256')
    let bytes = 0
    socket.on('data', (c: Buffer) => {
      h.update(c)
      bytes += c.length
    })
    socket.once('end', () => resolve({ hash: h.digest('hex'), bytes }))
    socket.once('error', reject)
  })
}

/** Whether an error (or one of its causes) carries `code`. */
function hasCode(err: unknown, code: string): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === code) return true
  }
  return false
}

/** A port that was free a moment ago; the caller must cope with losing it (see `bridged`). */
async function probablyFreePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as { port: number }
  await new Promise((r) => s.close(r))
  return port
}

/**
 * Host + a hand-shaken enclave with one server tunnel (vsock 5001 → a host TCP port) and one client
 * tunnel (vsock 5002). The host must bind the TCP port itself and settings cannot say "port 0", so
 * a port another process grabs in between makes the apply step fail with EADDRINUSE: retried.
 */
export async function bridged(
  world: ReturnType<typeof devWorld>,
  options: BridgeHostOptions = {},
  deps: HostDeps = {},
): Promise<{ host: BridgeHost; tcpPort: number; session: BridgeSession }> {
  const { host } = await startHost(world, options, deps)
  const errors: HandshakeFailedError[] = []
  host.on('handshakeError', (e) => errors.push(e))
  for (let attempt = 1; ; attempt++) {
    const tcpPort = await probablyFreePort()
    const hs = await connectBridge({ dev: world.enclaveDev })
    try {
      const session = await hs.finish(
        settings({
          servers: [{ enclaveCid: ENCLAVE_CID, enclaveListenPort: 5001, bridgeTcpPort: tcpPort }],
          clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 0 }],
        }),
        { watchdog: false },
      )
      return { host, tcpPort, session }
    } catch (err) {
      hs.close()
      await waitFor(() => errors.length > 0, { what: 'the host to report the failed handshake' })
      const cause = errors.shift()
      if (attempt >= 5 || !hasCode(cause, 'EADDRINUSE')) {
        await host.close({ drainTimeoutMs: 0 })
        throw cause ?? err
      }
    }
  }
}
