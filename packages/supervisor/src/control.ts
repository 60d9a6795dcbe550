import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Server, Socket } from 'node:net'
import type { Logger } from '@enclave/logger'
import { encodeJsonLine, JsonLinesDecoder } from '@enclave/protocol'
import { connect, type DevModeOptions, listen } from '@enclave/vsock-transport'
import { ControlError } from './errors.js'
import type { ServiceManager, ServiceStatus } from './services.js'

/**
 * The control interface (off unless odyn.yaml has `control`): list, status, start, stop, restart
 * and logs of the services odyn.yaml defines, over vsock. Both ends prove they hold the same key
 * (HMAC-SHA256 challenge-response with fresh nonces from each side), then every request and
 * response carries an HMAC under a per-session key with a sequence number, so a host that relays
 * the connection can neither forge, replay nor reorder commands. There is no command to run an
 * arbitrary program: only the measured image's own services can be started, which keeps an
 * attestation meaningful (it still attests *which* code can run, not which of it runs now).
 *
 * Wire: JSON lines. Server → `{"hello":"odyn-control/1","nonce":b64}`; client →
 * `{"nonce":b64,"proof":hex}`; server → `{"proof":hex}` (or `{"error":…}` and close). Then each
 * line is `{"p":"<payload JSON>","m":"<hex HMAC>"}` with payload `{"seq":n,…}`.
 */
export const CONTROL_PROTOCOL = 'odyn-control/1'
export const CONTROL_MAX_LINE = 64 * 1024
const HANDSHAKE_TIMEOUT_MS = 5000
const MAX_CLIENTS = 8
const MIN_KEY_BYTES = 32

export type ControlRequest =
  | { readonly op: 'list' }
  | { readonly op: 'status' | 'start' | 'stop' | 'restart'; readonly name: string }
  | { readonly op: 'logs'; readonly bytes?: number }

export type ControlResponse =
  | {
      readonly ok: true
      readonly services?: ServiceStatus[]
      readonly service?: ServiceStatus
      readonly logs?: string
    }
  | { readonly ok: false; readonly error: string }

const mac = (key: Buffer, ...parts: (string | Buffer)[]) => {
  const h = createHmac('sha256', key)
  for (const p of parts) h.update(p)
  return h.digest()
}

function checkKey(key: Uint8Array): Buffer {
  if (!(key instanceof Uint8Array) || key.length < MIN_KEY_BYTES) {
    throw new ControlError(`the control key must be at least ${MIN_KEY_BYTES} random bytes`)
  }
  return Buffer.from(key)
}

/** Reads JSON lines from a socket, one at a time, with a bounded line length. */
function lineReader(socket: Socket): () => Promise<unknown> {
  const decoder = new JsonLinesDecoder({ maxLineLength: CONTROL_MAX_LINE })
  const queue: unknown[] = []
  let waiting: { resolve: (v: unknown) => void; reject: (e: unknown) => void } | undefined
  let failure: unknown
  const fail = (err: unknown) => {
    failure ??= err
    waiting?.reject(failure)
    waiting = undefined
  }
  socket.on('data', (chunk: Buffer) => {
    try {
      queue.push(...decoder.push(chunk))
    } catch (err) {
      fail(err)
      socket.destroy()
      return
    }
    if (waiting && queue.length > 0) {
      waiting.resolve(queue.shift())
      waiting = undefined
    }
  })
  socket.on('close', () => fail(new ControlError('the control connection closed')))
  socket.on('error', (err) => fail(err))
  return () =>
    new Promise((resolve, reject) => {
      if (queue.length > 0) resolve(queue.shift())
      else if (failure) reject(failure)
      else waiting = { resolve, reject }
    })
}

function seal(sessionKey: Buffer, direction: 'c' | 's', payload: object): Buffer {
  const p = JSON.stringify(payload)
  return encodeJsonLine(
    { p, m: mac(sessionKey, direction, p).toString('hex') },
    { maxLineLength: CONTROL_MAX_LINE },
  )
}

function open(sessionKey: Buffer, direction: 'c' | 's', line: unknown, seq: number): Record<string, unknown> {
  const { p, m } = (line ?? {}) as { p?: unknown; m?: unknown }
  if (typeof p !== 'string' || typeof m !== 'string' || !/^[0-9a-f]{64}$/.test(m)) {
    throw new ControlError('a control message is malformed')
  }
  if (!timingSafeEqual(Buffer.from(m, 'hex'), mac(sessionKey, direction, p))) {
    throw new ControlError('a control message failed its integrity check')
  }
  const payload = JSON.parse(p) as Record<string, unknown>
  if (payload.seq !== seq)
    throw new ControlError('a control message is out of sequence (replayed or reordered)')
  return payload
}

export interface ControlServerOptions {
  /** @default vsock://any:9001 */
  readonly address?: string
  readonly key: Uint8Array
  readonly dev?: DevModeOptions | false
  readonly services: ServiceManager
  /** For `logs`. */
  readonly logs: () => Buffer
  readonly graceMs: number
}

/** Starts the control server; resolves once listening. */
export async function startControlServer(options: ControlServerOptions, logger: Logger): Promise<Server> {
  const key = checkKey(options.key)
  const log = logger.child({ component: 'control' })
  const handle = async (socket: Socket): Promise<void> => {
    const read = lineReader(socket)
    const ns = randomBytes(32)
    socket.write(encodeJsonLine({ hello: CONTROL_PROTOCOL, nonce: ns.toString('base64') }))
    const timer = setTimeout(() => socket.destroy(), HANDSHAKE_TIMEOUT_MS)
    const hello = (await read()) as { nonce?: unknown; proof?: unknown }
    clearTimeout(timer)
    const nc = typeof hello?.nonce === 'string' ? Buffer.from(hello.nonce, 'base64') : Buffer.alloc(0)
    const proof =
      typeof hello?.proof === 'string' && /^[0-9a-f]{64}$/.test(hello.proof)
        ? Buffer.from(hello.proof, 'hex')
        : undefined
    if (nc.length !== 32 || !proof || !timingSafeEqual(proof, mac(key, 'client\0', ns, nc))) {
      log.warn({}, 'refused an unauthenticated control client')
      socket.end(encodeJsonLine({ error: 'unauthenticated' }))
      return
    }
    socket.write(encodeJsonLine({ proof: mac(key, 'server\0', nc, ns).toString('hex') }))
    const sessionKey = mac(key, 'session\0', ns, nc)
    for (let seq = 0; ; seq++) {
      const request = open(sessionKey, 'c', await read(), seq) as { seq: number } & ControlRequest
      const response = await execute(request)
      socket.write(seal(sessionKey, 's', { seq, ...response }))
    }
  }
  const execute = async (request: ControlRequest): Promise<ControlResponse> => {
    try {
      const find = (name: string) => {
        const s = options.services.list().find((x) => x.name === name)
        if (!s) throw new ControlError(`no service named "${name}"`)
        return s
      }
      switch (request.op) {
        case 'list':
          return { ok: true, services: options.services.list() }
        case 'status':
          return { ok: true, service: find(request.name) }
        case 'start':
          find(request.name)
          await options.services.start(request.name)
          return { ok: true, service: find(request.name) }
        case 'stop':
          find(request.name)
          await options.services.stop(request.name, options.graceMs)
          return { ok: true, service: find(request.name) }
        case 'restart':
          find(request.name)
          await options.services.stop(request.name, options.graceMs)
          await options.services.start(request.name)
          return { ok: true, service: find(request.name) }
        case 'logs': {
          const all = options.logs()
          const bytes = Math.min(Math.max(0, Number(request.bytes ?? 16384) || 0), 32 * 1024)
          let text = all.subarray(Math.max(0, all.length - bytes)).toString('utf8')
          if (all.length > bytes) text = text.slice(text.indexOf('\n') + 1)
          return { ok: true, logs: text }
        }
        default:
          return { ok: false, error: `unknown op ${JSON.stringify((request as { op?: unknown }).op)}` }
      }
    } catch (err) {
      return { ok: false, error: (err as Error).message }
    }
  }
  const sockets = new Set<Socket>()
  const server = await listen(options.address ?? 'vsock://any:9001', { dev: options.dev }, (socket) => {
    if (sockets.size >= MAX_CLIENTS) {
      socket.destroy()
      return
    }
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    handle(socket).catch((err) => {
      log.debug({ err }, 'control connection ended')
      socket.destroy()
    })
  })
  // close() would wait for idle control clients forever: end them with the server.
  const close = server.close.bind(server)
  server.close = (callback?: (err?: Error) => void) => {
    for (const socket of sockets) socket.destroy()
    return close(callback)
  }
  return server
}

export interface ControlClient {
  request(request: ControlRequest): Promise<ControlResponse>
  close(): void
}

/** Connects and authenticates (both ways); rejects with ControlError if either side lacks the key. */
export async function connectControl(
  address: string,
  key: Uint8Array,
  options: { dev?: DevModeOptions | false; timeoutMs?: number } = {},
): Promise<ControlClient> {
  const k = checkKey(key)
  const socket = await connect(address, { dev: options.dev, timeoutMs: options.timeoutMs ?? 5000 })
  const read = lineReader(socket)
  try {
    const hello = (await read()) as { hello?: unknown; nonce?: unknown }
    if (hello?.hello !== CONTROL_PROTOCOL || typeof hello.nonce !== 'string') {
      throw new ControlError(`the peer does not speak ${CONTROL_PROTOCOL}`)
    }
    const ns = Buffer.from(hello.nonce, 'base64')
    const nc = randomBytes(32)
    socket.write(
      encodeJsonLine({ nonce: nc.toString('base64'), proof: mac(k, 'client\0', ns, nc).toString('hex') }),
    )
    const answer = (await read()) as { proof?: unknown; error?: unknown }
    const proof =
      typeof answer?.proof === 'string' && /^[0-9a-f]{64}$/.test(answer.proof)
        ? Buffer.from(answer.proof, 'hex')
        : undefined
    if (!proof || !timingSafeEqual(proof, mac(k, 'server\0', nc, ns))) {
      throw new ControlError(
        typeof answer?.error === 'string'
          ? `the supervisor refused us: ${answer.error}`
          : 'the supervisor could not prove it holds the key',
      )
    }
    const sessionKey = mac(k, 'session\0', ns, nc)
    let seq = 0
    let chain = Promise.resolve() as Promise<unknown>
    return {
      request(request) {
        const mine = seq++
        const result = chain.then(async () => {
          socket.write(seal(sessionKey, 'c', { seq: mine, ...request }))
          const { seq: _s, ...response } = open(sessionKey, 's', await read(), mine)
          return response as ControlResponse
        })
        chain = result.catch(() => {})
        return result
      },
      close: () => socket.destroy(),
    }
  } catch (err) {
    socket.destroy()
    throw err instanceof ControlError
      ? err
      : new ControlError(`control handshake failed: ${(err as Error).message}`, { cause: err })
  }
}
