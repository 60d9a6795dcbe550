import { EventEmitter } from 'node:events'
import type { Server, Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import {
  ACK,
  type BridgeSettings,
  encodeHeartbeat,
  encodeProxyV1,
  HEARTBEAT_RECORD_BYTES,
  InvalidSettingsError,
  type Logger,
  proxyHeaderOf,
  ReadFailure,
  runHeartbeatChannel,
  SocketReader,
  settingsFromJson,
} from '@enclave/bridge-enclave'
import { forward, type Tunnel } from '@enclave/tunnel'
import { listen } from '@enclave/vsock-transport'
import { ClientTunnel } from './client-tunnel.js'
import { type ResolveHost, systemResolve } from './destinations.js'
import { selectEnv } from './env-allowlist.js'
import {
  EnclaveIdMismatchError,
  HandshakeFailedError,
  type HandshakeStep,
  HeartbeatTimeoutError,
  HostClosingError,
  ListenFailedError,
  TunnelFailedError,
} from './errors.js'
import { LogSink } from './log-sink.js'
import { type BridgeHostOptions, type ResolvedBridgeHostOptions, resolveOptions } from './options.js'
import {
  fromSessionEnclave,
  MAX_WATCHDOG_CHANNELS,
  type PeerCidSource,
  serverCidAllowed,
  vsockPeerCid,
} from './peer-policy.js'

/** Unclassified connections to the handshake port at once (handshakes in progress). */
export const MAX_PENDING_HANDSHAKES = 16

/** The host's lifecycle: one union, not a set of flags. */
export type BridgeHostState = 'idle' | 'waiting' | 'running' | 'failed' | 'closing' | 'closed'

export interface ReadyInfo {
  settings: BridgeSettings
  /** Unknown settings fields that were ignored. */
  warnings: string[]
  /** Names (not values) of the forwarded variables. */
  forwardedEnv: string[]
  /** From accepting the enclave's connection to sending the final ACK, in ms. */
  durationMs: number
}

export interface BridgeHostEvents {
  /** An enclave's handshake failed; the host keeps listening for the next one. */
  handshakeError: [HandshakeFailedError]
  /** A handshake completed: tunnels are listening and the ACK was sent. */
  ready: [ReadyInfo]
  /** A valid heartbeat arrived. */
  heartbeat: []
  /** The watchdog missed an interval or saw a wrong id. */
  failure: [HeartbeatTimeoutError | EnclaveIdMismatchError]
  /** The host is closed. */
  closed: []
}

export interface TunnelSnapshot {
  kind: 'server' | 'client'
  /** TCP port (server tunnel) or vsock dial port (client tunnel). */
  port: number
  active: number
  total: number
  errors: number
  bytesIn: number
  bytesOut: number
}

export interface BridgeHostStats {
  state: BridgeHostState
  handshakes: { completed: number; failed: number }
  session:
    | { appName: string; enclaveId: string; intervalMs: number; heartbeatAgeMs: number; since: number }
    | undefined
  tunnels: TunnelSnapshot[]
  logs: { connections: number; active: number; lines: number; bytes: number; truncatedLines: number }
}

interface HostDeps {
  peerCidOf: PeerCidSource
  resolve: ResolveHost
}

interface Session {
  readonly settings: BridgeSettings
  /** CID the handshake came from; undefined in dev mode. */
  readonly peerCid: number | undefined
  readonly record: Buffer
  readonly servers: Tunnel[]
  readonly clients: ClientTunnel[]
  readonly channels: Set<() => void>
  readonly timer: NodeJS.Timeout
  readonly since: number
  lastBeat: number
}

/** The running host half of the bridge. */
export interface BridgeHost extends EventEmitter<BridgeHostEvents> {
  readonly state: BridgeHostState
  readonly options: ResolvedBridgeHostOptions
  /** Listens on the log port, then the handshake port. Rejects with ListenFailedError. */
  start(): Promise<void>
  stats(): BridgeHostStats
  /** Stops accepting, lets tunnelled connections drain (up to `drainTimeoutMs`), closes everything. */
  close(options?: { drainTimeoutMs?: number }): Promise<void>
}

function readFailureMessage(err: ReadFailure, timeoutMs: number): string {
  switch (err.reason) {
    case 'timeout':
      return `${err.message} (the enclave must answer each step within ${timeoutMs} ms)`
    default:
      return err.message
  }
}

class BridgeHostImpl extends EventEmitter<BridgeHostEvents> implements BridgeHost {
  readonly options: ResolvedBridgeHostOptions
  #state: BridgeHostState = 'idle'
  readonly #log: Logger
  #initServer: Server | undefined
  #logServer: Server | undefined
  readonly #sink: LogSink
  #session: Session | undefined
  // Applying settings is serialised: two enclaves hand-shaking at once must not race for ports.
  #applying: Promise<unknown> = Promise.resolve()
  readonly #handshakes = { completed: 0, failed: 0 }
  readonly #pending = new Set<Socket>()
  /** Handshakes past their ACK; a Go enclave opens its watchdog connection during its handshake. */
  readonly #inProgress = new Set<Promise<void>>()
  #closing: Promise<void> | undefined

  readonly #peerCidOf: PeerCidSource
  readonly #resolve: ResolveHost

  constructor(options: ResolvedBridgeHostOptions, logger: Logger, deps: HostDeps) {
    super()
    this.options = options
    this.#peerCidOf = deps.peerCidOf
    this.#resolve = deps.resolve
    this.#log = logger.child({ component: 'bridge-host' })
    this.#sink = new LogSink(
      options.logOutput,
      options.maxLogLineBytes,
      this.#log.child({ component: 'bridge-logs' }),
    )
  }

  get state(): BridgeHostState {
    return this.#state
  }

  #address(port: number): string {
    const cid = this.options.listenCid === 'any' ? 'any' : String(this.options.listenCid)
    return `vsock://${cid}:${port}`
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new ListenFailedError(`start() called in state ${this.#state}`)
    const dev = this.options.dev !== undefined ? { dev: this.options.dev } : {}
    // Logs first, as the Go host does: an enclave may log before it hand-shakes.
    const logAddress = this.#address(this.options.logPort)
    try {
      this.#logServer = await listen(logAddress, dev, this.#sink.accept)
    } catch (err) {
      throw new ListenFailedError(`cannot listen for logs on ${logAddress}: ${(err as Error).message}`, {
        cause: err,
      })
    }
    const initAddress = this.#address(this.options.initPort)
    try {
      this.#initServer = await listen(initAddress, dev, (socket) => void this.#onInit(socket))
    } catch (err) {
      this.#logServer.close()
      throw new ListenFailedError(
        `cannot listen for handshakes on ${initAddress}: ${(err as Error).message}`,
        {
          cause: err,
        },
      )
    }
    if (this.options.forwardAllEnv) {
      this.#log.warn(
        {},
        'forwarding the WHOLE host environment to the enclave (--forward-all-env): secrets included; prefer an allowlist',
      )
    }
    this.#state = 'waiting'
    this.#log.info({ handshake: initAddress, logs: logAddress }, 'bridge host waiting for an enclave')
  }

  async #onInit(socket: Socket): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') return void socket.destroy()
    socket.on('error', () => {})
    // Each unfinished handshake may buffer a line of up to 1 MiB: bound how many run at once.
    if (this.#pending.size >= MAX_PENDING_HANDSHAKES) {
      this.#log.warn(
        { limit: MAX_PENDING_HANDSHAKES },
        'connection to the handshake port refused: too many pending',
      )
      return void socket.destroy()
    }
    const started = performance.now()
    const peerCid = this.#peerCidOf(socket)
    const reader = new SocketReader(socket)
    const timeoutMs = this.options.handshakeTimeoutMs
    this.#pending.add(socket)
    let step: HandshakeStep = 'ack'
    let done = (): void => {}
    try {
      // With a session running this may be a watchdog connection, and a Go enclave sends its
      // first heartbeat only after interval/2: wait at least a whole interval for it.
      const current = this.#session
      if (current) this.#checkSameEnclave(peerCid, current)
      const firstTimeoutMs = current ? Math.max(timeoutMs, current.settings.watchdog.intervalMs) : timeoutMs
      const first = await reader.peek(2, { timeoutMs: firstTimeoutMs, what: 'the first message (ACK)' })
      const session = this.#session
      if (session) this.#checkSameEnclave(peerCid, session)
      if (session && (await this.#isHeartbeat(reader, first, session)))
        return this.#watchdogChannel(socket, reader, session, peerCid)
      if (first[0] !== ACK[0] || first[1] !== ACK[1]) {
        // After a handshake, Go treats every connection to this port as a watchdog connection.
        if (session) return this.#watchdogChannel(socket, reader, session, peerCid)
        if (this.#inProgress.size > 0) {
          await Promise.race([
            Promise.allSettled([...this.#inProgress]),
            delay(timeoutMs, undefined, { ref: false }),
          ])
          const settled = this.#session
          if (settled) {
            this.#checkSameEnclave(peerCid, settled)
            return this.#watchdogChannel(socket, reader, settled, peerCid)
          }
        }
        throw new HandshakeFailedError(
          'ack',
          `the first message was not an ACK (06 0a) but ${first.toString('hex')}`,
        )
      }
      await reader.readExact(2)
      let finished!: () => void
      const marker = new Promise<void>((resolve) => {
        finished = resolve
      })
      this.#inProgress.add(marker)
      done = () => {
        this.#inProgress.delete(marker)
        finished()
      }
      step = 'environment'
      const env = selectEnv(this.options.forwardedEnv, this.options.forwardEnv, this.options.forwardAllEnv)
      socket.write(`${JSON.stringify(env)}\n`)
      step = 'settings'
      const line = await reader.readLine(this.options.maxHandshakeLineBytes, {
        timeoutMs,
        what: 'the settings line',
      })
      let json: unknown
      try {
        json = JSON.parse(line.toString('utf8'))
      } catch (err) {
        throw new HandshakeFailedError(
          'settings',
          `the settings line is not valid JSON: ${(err as Error).message}`,
          {
            cause: err,
          },
        )
      }
      let parsed: ReturnType<typeof settingsFromJson>
      try {
        parsed = settingsFromJson(json)
      } catch (err) {
        if (err instanceof InvalidSettingsError)
          throw new HandshakeFailedError('settings', err.message, { cause: err })
        throw err
      }
      for (const warning of parsed.warnings) this.#log.warn({ warning }, 'settings: unknown field ignored')
      parsed.settings.servers.forEach((s, i) => {
        if (!serverCidAllowed(s.enclaveCid, peerCid, this.options.allowEnclaveCids)) {
          throw new HandshakeFailedError(
            'settings',
            `servers[${i}].enclaveCid ${s.enclaveCid} is not the CID this enclave connected from (${peerCid ?? 'unknown'}); ` +
              'an enclave may only expose its own ports (trust other CIDs with allowEnclaveCids / --allow-enclave-cid)',
          )
        }
      })
      step = 'apply'
      await this.#apply(parsed.settings, peerCid)
      socket.end(ACK)
      reader.release()
      this.#handshakes.completed++
      const info: ReadyInfo = {
        settings: parsed.settings,
        warnings: parsed.warnings,
        forwardedEnv: Object.keys(env),
        durationMs: performance.now() - started,
      }
      this.#log.info(
        {
          appName: parsed.settings.appName,
          enclaveId: parsed.settings.watchdog.enclaveId,
          servers: parsed.settings.servers.length,
          clients: parsed.settings.clients.length,
          forwardedEnv: info.forwardedEnv,
          durationMs: Math.round(info.durationMs * 10) / 10,
        },
        'enclave handshake complete; tunnels ready',
      )
      this.emit('ready', info)
    } catch (cause) {
      reader.release()
      socket.destroy()
      if (this.state === 'closing' || this.state === 'closed') return
      const err =
        cause instanceof HandshakeFailedError
          ? cause
          : cause instanceof ReadFailure
            ? new HandshakeFailedError(step, readFailureMessage(cause, timeoutMs), { cause })
            : new HandshakeFailedError(step, (cause as Error).message, { cause })
      this.#handshakes.failed++
      this.#log.warn(
        { err: { code: err.code, message: err.message } },
        'enclave handshake failed; waiting for the next one',
      )
      this.emit('handshakeError', err)
    } finally {
      done()
      this.#pending.delete(socket)
    }
  }

  /** A watchdog connection starts with our enclave's 17-byte record; a handshake with ACK alone. */
  async #isHeartbeat(reader: SocketReader, first: Buffer, session: Session): Promise<boolean> {
    if (first[0] !== session.record[0] || first[1] !== session.record[1]) return false
    try {
      // Only ids starting 06 0A get here: an enclave hand-shaking sends 2 bytes and waits.
      const bytes = await reader.peek(HEARTBEAT_RECORD_BYTES, { timeoutMs: 200 })
      return bytes.equals(session.record)
    } catch {
      return false
    }
  }

  /**
   * While a session runs, only its enclave (its CID, or one in allowEnclaveCids) may hand-shake
   * again or open watchdog connections: anyone else on vsock could otherwise replace the session.
   */
  #checkSameEnclave(peerCid: number | undefined, session: Session): void {
    if (fromSessionEnclave(peerCid, session.peerCid, this.options.allowEnclaveCids)) return
    throw new HandshakeFailedError(
      'ack',
      `connection from CID ${peerCid ?? 'unknown'} refused: a session with the enclave at CID ` +
        `${session.peerCid ?? 'unknown'} is running (trust other CIDs with allowEnclaveCids / --allow-enclave-cid)`,
    )
  }

  #watchdogChannel(
    socket: Socket,
    reader: SocketReader,
    session: Session,
    peerCid: number | undefined,
  ): void {
    this.#pending.delete(socket)
    if (session.channels.size >= MAX_WATCHDOG_CHANNELS) {
      this.#log.warn(
        { limit: MAX_WATCHDOG_CHANNELS, peerCid },
        'watchdog connection refused: the session has enough open already',
      )
      reader.release()
      socket.destroy()
      return
    }
    const { enclaveId, intervalMs } = session.settings.watchdog
    const stop = runHeartbeatChannel(
      socket,
      reader,
      { enclaveId, intervalMs },
      {
        onBeat: () => {
          if (this.#session !== session) return
          session.lastBeat = Date.now()
          session.timer.refresh()
          this.emit('heartbeat')
        },
        onMismatch: (received) => {
          session.channels.delete(stop)
          if (this.#session !== session) return
          // Only the session's own enclave can fail it; from anyone else (a CID in
          // allowEnclaveCids) a wrong id just loses that connection.
          if (peerCid === session.peerCid) {
            this.#failure(new EnclaveIdMismatchError(enclaveId, received))
          } else {
            this.#log.warn({ peerCid, received }, 'watchdog connection with a wrong enclave id closed')
          }
        },
        onClose: () => {
          session.channels.delete(stop)
        },
      },
    )
    session.channels.add(stop)
  }

  #failure(err: HeartbeatTimeoutError | EnclaveIdMismatchError): void {
    if (this.#state !== 'running') return
    this.#log.error({ err: { code: err.code, message: err.message } }, 'bridge watchdog failed')
    if (this.options.onWatchdogFailure === 'wait') {
      this.#state = 'waiting'
      void this.#endSession(0).then(() =>
        this.#log.info({}, 'session torn down; waiting for a new handshake'),
      )
    } else {
      this.#state = 'failed'
      clearTimeout(this.#session?.timer)
    }
    this.emit('failure', err)
  }

  #apply(settings: BridgeSettings, peerCid: number | undefined): Promise<void> {
    const run = this.#applying.then(() => this.#applyNow(settings, peerCid))
    this.#applying = run.catch(() => {})
    return run
  }

  async #applyNow(settings: BridgeSettings, peerCid: number | undefined): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') throw new HostClosingError()
    // A new handshake means the enclave restarted: its old connections are gone. Checked again
    // here, since two handshakes may have started before either had a session.
    if (this.#session) {
      this.#checkSameEnclave(peerCid, this.#session)
      this.#log.info(
        { enclaveId: this.#session.settings.watchdog.enclaveId },
        'new handshake replaces the session',
      )
      await this.#endSession(0)
    }
    const o = this.options
    const servers: Tunnel[] = []
    const clients: ClientTunnel[] = []
    try {
      for (const s of settings.servers) {
        const bind = o.serverBindHost.includes(':') ? `[${o.serverBindHost}]` : o.serverBindHost
        const from = `tcp://${bind}:${s.bridgeTcpPort}`
        const target = `vsock://${s.enclaveCid}:${s.enclaveListenPort}`
        try {
          servers.push(
            await forward(
              {
                from,
                to: o.proxyProtocol
                  ? (inbound: Socket) => ({
                      address: target,
                      preamble: Buffer.from(encodeProxyV1(proxyHeaderOf(inbound)), 'latin1'),
                    })
                  : target,
                maxConnections: o.maxConnectionsPerTunnel,
                idleTimeoutMs: o.idleTimeoutMs,
                drainTimeoutMs: o.drainTimeoutMs,
                ...(o.dev !== undefined ? { connect: { dev: o.dev } } : {}),
              },
              { logger: this.#log.child({ tunnel: 'server', port: s.bridgeTcpPort }) },
            ),
          )
        } catch (err) {
          const cause = (err as { cause?: { message?: string } }).cause
          throw new TunnelFailedError(`server tunnel ${from}: ${cause?.message ?? (err as Error).message}`, {
            cause: err,
          })
        }
      }
      for (const c of settings.clients) {
        clients.push(
          await ClientTunnel.start({
            settings: c,
            listenCid: o.listenCid,
            policy: o.policy,
            maxConnections: o.maxConnectionsPerTunnel,
            idleTimeoutMs: o.idleTimeoutMs,
            dev: o.dev,
            logger: this.#log,
            resolve: this.#resolve,
          }),
        )
      }
    } catch (err) {
      await Promise.all([
        ...servers.map((t) => t.close({ drainTimeoutMs: 0 })),
        ...clients.map((c) => c.close(0)),
      ])
      throw err
    }
    const now = Date.now()
    this.#session = {
      settings,
      peerCid,
      record: encodeHeartbeat(settings.watchdog.enclaveId),
      servers,
      clients,
      channels: new Set(),
      since: now,
      lastBeat: now,
      timer: setTimeout(
        () => this.#failure(new HeartbeatTimeoutError(settings.watchdog.intervalMs)),
        settings.watchdog.intervalMs,
      ),
    }
    this.#state = 'running'
  }

  async #endSession(drainTimeoutMs: number): Promise<void> {
    const session = this.#session
    if (!session) return
    this.#session = undefined
    clearTimeout(session.timer)
    for (const stop of session.channels) stop()
    await Promise.all([
      ...session.servers.map((t) => t.close({ drainTimeoutMs })),
      ...session.clients.map((c) => c.close(drainTimeoutMs)),
    ])
  }

  stats(): BridgeHostStats {
    const s = this.#session
    const tunnels: TunnelSnapshot[] = []
    if (s) {
      s.settings.servers.forEach((cfg, i) => {
        const st = s.servers[i]?.stats()
        if (st) tunnels.push({ kind: 'server', port: cfg.bridgeTcpPort, ...pick(st) })
      })
      for (const c of s.clients) tunnels.push({ kind: 'client', port: c.port, ...pick(c.stats) })
    }
    return {
      state: this.#state,
      handshakes: { ...this.#handshakes },
      session: s && {
        appName: s.settings.appName,
        enclaveId: s.settings.watchdog.enclaveId,
        intervalMs: s.settings.watchdog.intervalMs,
        heartbeatAgeMs: Date.now() - s.lastBeat,
        since: s.since,
      },
      tunnels,
      logs: { ...this.#sink.stats, active: this.#sink.active },
    }
  }

  close({ drainTimeoutMs = this.options.drainTimeoutMs }: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'closing'
      const closed = (server: Server | undefined): Promise<void> =>
        new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()))
      const initClosed = closed(this.#initServer)
      const logClosed = closed(this.#logServer)
      for (const s of this.#pending) s.destroy()
      await this.#applying
      await this.#endSession(drainTimeoutMs)
      await initClosed
      // Last: the enclave's final log lines are still wanted while tunnels drain.
      this.#sink.closeAll()
      await logClosed
      this.#state = 'closed'
      this.#log.info({}, 'bridge host closed')
      this.emit('closed')
    })()
    return this.#closing
  }
}

function pick(s: { active: number; total: number; errors: number; bytesIn: number; bytesOut: number }) {
  return { active: s.active, total: s.total, errors: s.errors, bytesIn: s.bytesIn, bytesOut: s.bytesOut }
}

const silent: Logger = {
  child: () => silent,
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
}

/**
 * Creates the host half of the bridge (call `start()`). Wire-compatible with DIMO's Go host; see
 * the README for what it does better (env allowlist, egress allowlist, dial errors, re-handshake).
 */
export function createBridgeHost(
  options: BridgeHostOptions = {},
  {
    logger,
    peerCidOf,
    resolve,
  }: {
    logger?: Logger
    /** Where a connection's vsock CID comes from (default: getpeername); for tests and custom transports. */
    peerCidOf?: PeerCidSource
    /** Name resolution for the egress allowlist (default: dns.lookup, all answers); for tests. */
    resolve?: ResolveHost
  } = {},
): BridgeHost {
  return new BridgeHostImpl(resolveOptions(options), logger ?? silent, {
    peerCidOf: peerCidOf ?? vsockPeerCid,
    resolve: resolve ?? systemResolve,
  })
}
