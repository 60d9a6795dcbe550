import { lookup } from 'node:dns/promises'
import { type Server, type Socket, connect as tcpConnect } from 'node:net'
import { constants } from 'node:os'
import { pipeConnection, readPrefix, silentLogger } from '@enclave/tunnel'
import { listen } from '@enclave/vsock-transport'
import {
  DialFailedError,
  EgressError,
  InvalidOptionsError,
  MalformedMessageError,
  RefusedError,
  ResolveFailedError,
  TimeoutError,
} from './errors.js'
import { formatIp, type Ip, parseIp } from './ip.js'
import {
  type Context,
  connectionLimits,
  type EgressHostOptions,
  HOST_DEFAULTS,
  integer,
  type Resolve,
} from './options.js'
import {
  checkDestination,
  checkResolved,
  compilePolicy,
  type EgressPolicy,
  HOST_LOOPBACK,
  HOST_NAME,
  normalizeHost,
} from './policy.js'
import { encodeReply, MessageDecoder, parseRequest, type TunnelFailure } from './wire.js'

/** A running host half. */
export interface EgressHost {
  readonly server: Server
  /** Tunnels open now and since start. */
  stats(): { active: number; total: number; refused: number }
  close(): Promise<void>
}

const defaultResolve: Resolve = async (name) => lookup(name, { all: true, verbatim: true })

function withTimeout<T>(work: (signal: AbortSignal) => Promise<T>, ms: number, what: string): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort()
      reject(new TimeoutError(what, ms))
    }, ms)
  })
  return Promise.race([work(controller.signal), timeout]).finally(() => clearTimeout(timer))
}

function dial(ip: Ip, port: number, timeoutMs: number): Promise<Socket> {
  const host = formatIp(ip)
  const where = `${ip.family === 6 ? `[${host}]` : host}:${port}`
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port, family: ip.family })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new TimeoutError(`connecting to ${where}`, timeoutMs))
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.off('error', onError)
      resolve(socket)
    })
    const onError = (cause: Error): void => {
      clearTimeout(timer)
      reject(new DialFailedError(where, { cause }))
    }
    socket.once('error', onError)
  })
}

function failureOf(error: EgressError): TunnelFailure {
  const cause = error.cause as NodeJS.ErrnoException | undefined
  const errnoName = cause?.code as keyof typeof constants.errno | undefined
  let osCode = errnoName && errnoName in constants.errno ? constants.errno[errnoName] : 0
  if (error instanceof RefusedError) osCode = constants.errno.EACCES
  if (error instanceof TimeoutError) osCode = constants.errno.ETIMEDOUT
  return {
    os_code: osCode,
    message: error.message,
    code: error.code,
    ...(error instanceof RefusedError ? { rule: error.rule } : {}),
  }
}

/**
 * Starts the host half of egress: accepts tunnel requests from enclaves on vsock 17002, checks the
 * policy (this side is the trust boundary: the enclave's app may bypass the in-enclave proxy and
 * speak this protocol directly), resolves names once, checks every resolved address, dials a
 * checked address and relays bytes with @enclave/tunnel's pipeConnection.
 */
export async function startEgressHost(
  options: EgressHostOptions,
  { logger = silentLogger }: Context = {},
): Promise<EgressHost> {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionsError('startEgressHost() needs an options object with `policy`')
  const policy: EgressPolicy = compilePolicy(options.policy)
  const address = options.address ?? HOST_DEFAULTS.address
  const resolve = options.resolve ?? defaultResolve
  if (typeof resolve !== 'function') throw new InvalidOptionsError('option resolve must be a function')
  const resolveTimeoutMs = integer(
    'resolveTimeoutMs',
    options.resolveTimeoutMs ?? HOST_DEFAULTS.resolveTimeoutMs,
    1,
    600_000,
  )
  const connectTimeoutMs = integer(
    'connectTimeoutMs',
    options.connectTimeoutMs ?? HOST_DEFAULTS.connectTimeoutMs,
    1,
    600_000,
  )
  const requestTimeoutMs = integer(
    'requestTimeoutMs',
    options.requestTimeoutMs ?? HOST_DEFAULTS.requestTimeoutMs,
    1,
    600_000,
  )
  const { idleTimeoutMs, maxConnections } = connectionLimits(options, HOST_DEFAULTS)
  const log = logger.child({ component: 'egress-host' })
  const sockets = new Set<Socket>()
  let total = 0
  let refused = 0

  const targetsOf = async (host: string): Promise<{ name?: string; ips: Ip[] }> => {
    const destination = normalizeHost(host)
    const verdict = checkDestination(policy, destination)
    if (!verdict.allowed) throw new RefusedError(destination.host, verdict.rule)
    if (destination.kind === 'ip') return { ips: [destination.ip] }
    const name = destination.host
    let ips: Ip[]
    if (name === HOST_NAME) ips = [HOST_LOOPBACK]
    else {
      let found: readonly { address: string }[]
      try {
        found = await withTimeout((signal) => resolve(name, signal), resolveTimeoutMs, `resolving ${name}`)
      } catch (error) {
        if (error instanceof EgressError) throw error
        throw new ResolveFailedError(name, { cause: error })
      }
      ips = found.map((a) => parseIp(a.address)).filter((ip): ip is Ip => ip !== undefined)
      if (ips.length === 0) throw new ResolveFailedError(name, { cause: 'no usable address' })
    }
    // Every address must pass: a name pointing anywhere protected is refused outright.
    for (const ip of ips) {
      const check = checkResolved(policy, name, ip)
      if (!check.allowed) throw new RefusedError(name, check.rule)
    }
    return { name, ips }
  }

  const handle = async (inbound: Socket): Promise<void> => {
    const decoder = new MessageDecoder()
    let rest: Buffer
    let request: { host: string; port: number }
    try {
      const prefix = await readPrefix(inbound, (chunk) => decoder.push(chunk), {
        signal: AbortSignal.timeout(requestTimeoutMs),
        maxBytes: 8192,
      })
      rest = prefix.rest
      request = parseRequest(prefix.value)
    } catch (error) {
      log.warn({ err: error }, 'bad egress tunnel request')
      if (error instanceof MalformedMessageError) inbound.end(encodeReply({ Err: failureOf(error) }))
      else inbound.destroy()
      return
    }
    let outbound: Socket
    try {
      const { ips } = await targetsOf(request.host)
      let lastError: unknown
      let connected: Socket | undefined
      for (const ip of ips) {
        try {
          connected = await dial(ip, request.port, connectTimeoutMs)
          break
        } catch (error) {
          lastError = error
        }
      }
      if (!connected) throw lastError
      outbound = connected
    } catch (error) {
      const failure =
        error instanceof EgressError
          ? error
          : new DialFailedError(`${request.host}:${request.port}`, { cause: error })
      if (failure instanceof RefusedError) refused++
      log.info(
        { host: request.host, port: request.port, code: failure.code, rule: (failure as RefusedError).rule },
        'egress refused or failed',
      )
      inbound.end(encodeReply({ Err: failureOf(failure) }))
      return
    }
    if (inbound.destroyed) {
      outbound.destroy()
      return
    }
    log.debug({ host: request.host, port: request.port }, 'egress tunnel open')
    inbound.write(encodeReply('Ok'))
    if (rest.length > 0) outbound.write(rest)
    await pipeConnection(inbound, outbound, { idleTimeoutMs }).done
  }

  const server = await listen(address, options.dev === undefined ? {} : { dev: options.dev }, (socket) => {
    if (sockets.size >= maxConnections) {
      socket.destroy()
      return
    }
    total++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => sockets.delete(socket))
    handle(socket).catch((error: unknown) => {
      log.error({ err: error }, 'egress tunnel failed')
      socket.destroy()
    })
  })
  log.info({ address }, 'egress host proxy listening')

  let closing: Promise<void> | undefined
  return {
    server,
    stats: () => ({ active: sockets.size, total, refused }),
    close() {
      closing ??= new Promise<void>((done) => {
        server.close(() => done())
        for (const socket of sockets) socket.destroy()
      })
      return closing
    },
  }
}
