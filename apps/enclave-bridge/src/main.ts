import type { Server } from 'node:http'
import {
  type BridgeHost,
  BridgeHostError,
  type BridgeHostOptions,
  createBridgeHost,
  startMonitor,
} from '@enclave/bridge-host'
import { Command, InvalidArgumentError, Option } from 'commander'
import { type Logger, pino } from 'pino'

/** Exit codes, documented in the README and `--help`. */
export const EXIT = Object.freeze({
  ok: 0,
  watchdog: 1,
  usage: 2,
  listen: 3,
  drainCut: 4,
  internal: 70,
})

function intArg(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`)
    }
    return n
  }
}

function listArg(value: string, previous: string[] | undefined): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  return [...(previous ?? []), ...items]
}

/** A bare flag gives undefined (on); its environment variable gives text (0/false/no/off mean off). */
function boolEnv(value: string | undefined): boolean {
  return value === undefined || !['', '0', 'false', 'no', 'off'].includes(value.trim().toLowerCase())
}

// Go's zerolog level names, as enclaves send them in settings.logger.level.
const LEVELS: Record<string, string> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  error: 'error',
  fatal: 'fatal',
  panic: 'fatal',
  disabled: 'silent',
  silent: 'silent',
}

interface CliOptions {
  initPort: number
  logPort: number
  listenCid: string
  forwardEnv?: string[]
  forwardAllEnv?: boolean
  allowDestination?: string[]
  allowEnclaveCid?: string[]
  bindHost: string
  proxyProtocol?: boolean
  onWatchdogFailure: 'exit' | 'wait'
  monitor: boolean
  monitorPort: number
  monitorHost: string
  logLevel: string
  drainTimeout: number
  idleTimeout: number
  maxConnections: number
  devDir?: string
  devCid?: number
}

function program(): Command {
  return new Command('enclave-bridge')
    .description(
      "Host side of the enclave bridge (wire-compatible with DIMO's enclave-bridge): handshake on vsock, " +
        'tunnels the enclave declares, enclave logs on stdout, watchdog. Diagnostics go to stderr.',
    )
    .addOption(
      new Option('--init-port <port>', 'vsock port for the handshake and watchdog')
        .env('ENCLAVE_BRIDGE_VSOCK_INIT_PORT')
        .default(5000)
        .argParser(intArg('--init-port', 0, 0xfffffffe)),
    )
    .addOption(
      new Option('--log-port <port>', 'vsock port for enclave logs (copied to stdout)')
        .env('ENCLAVE_BRIDGE_VSOCK_STDOUT_PORT')
        .default(4999)
        .argParser(intArg('--log-port', 0, 0xfffffffe)),
    )
    .addOption(
      new Option('--listen-cid <cid>', 'vsock CID to listen on ("any" or a number)')
        .env('ENCLAVE_BRIDGE_LISTEN_CID')
        .default('any'),
    )
    .addOption(
      new Option(
        '--forward-env <patterns>',
        'variables forwarded to the enclave: NAME or PREFIX*, comma-separated, repeatable',
      )
        .env('ENCLAVE_BRIDGE_FORWARD_ENV')
        .argParser(listArg),
    )
    .addOption(
      new Option(
        '--forward-all-env',
        "forward the WHOLE environment (Go's behaviour; secrets included; logs a warning)",
      )
        .env('ENCLAVE_BRIDGE_FORWARD_ALL_ENV')
        .argParser(boolEnv),
    )
    .addOption(
      new Option(
        '--allow-destination <patterns>',
        'client-tunnel egress allowlist: host, *.label, **.suffix, IP, CIDR, each optionally :port; once set, all else is denied',
      )
        .env('ENCLAVE_BRIDGE_ALLOW_DESTINATIONS')
        .argParser(listArg),
    )
    .addOption(
      new Option(
        '--allow-enclave-cid <cids>',
        "CIDs trusted besides the handshake peer's (servers[].enclaveCid, re-handshakes, watchdog), comma-separated, repeatable",
      )
        .env('ENCLAVE_BRIDGE_ALLOW_ENCLAVE_CIDS')
        .argParser(listArg),
    )
    .addOption(
      new Option('--bind-host <host>', 'interface server tunnels listen on (0.0.0.0 = all, as Go does)')
        .env('ENCLAVE_BRIDGE_BIND_HOST')
        .default('127.0.0.1'),
    )
    .addOption(
      new Option(
        '--proxy-protocol',
        'send a PROXY v1 header with the client address on server tunnels (opt-in)',
      )
        .env('ENCLAVE_BRIDGE_PROXY_PROTOCOL')
        .argParser(boolEnv),
    )
    .addOption(
      new Option(
        '--on-watchdog-failure <action>',
        'exit non-zero (for a supervisor) or wait for a new handshake',
      )
        .env('ENCLAVE_BRIDGE_ON_WATCHDOG_FAILURE')
        .choices(['exit', 'wait'])
        .default('exit'),
    )
    .addOption(
      new Option('--monitor-port <port>', 'monitoring HTTP port (/metrics, /healthz)')
        .env('ENCLAVE_BRIDGE_MONITOR_PORT')
        .default(8888)
        .argParser(intArg('--monitor-port', 0, 65535)),
    )
    .addOption(
      new Option('--monitor-host <host>', 'interface of the monitoring server')
        .env('ENCLAVE_BRIDGE_MONITOR_HOST')
        .default('127.0.0.1'),
    )
    .option('--no-monitor', 'do not start the monitoring server')
    .addOption(
      new Option('--log-level <level>', 'level of the bridge’s own logs (stderr); the enclave may change it')
        .env('ENCLAVE_BRIDGE_LOG_LEVEL')
        .choices(Object.keys(LEVELS))
        .default('info'),
    )
    .addOption(
      new Option('--drain-timeout <ms>', 'on SIGTERM/SIGINT, let tunnelled connections finish for this long')
        .env('ENCLAVE_BRIDGE_DRAIN_TIMEOUT_MS')
        .default(10_000)
        .argParser(intArg('--drain-timeout', 0, 2_147_483_647)),
    )
    .addOption(
      new Option('--idle-timeout <ms>', 'close a tunnelled connection idle this long (0 = never)')
        .env('ENCLAVE_BRIDGE_IDLE_TIMEOUT_MS')
        .default(0)
        .argParser(intArg('--idle-timeout', 0, 2_147_483_647)),
    )
    .addOption(
      new Option('--max-connections <n>', 'connections each tunnel carries at once')
        .env('ENCLAVE_BRIDGE_MAX_CONNECTIONS')
        .default(1024)
        .argParser(intArg('--max-connections', 1, 1_000_000)),
    )
    .addOption(
      new Option('--dev-dir <dir>', 'dev mode: emulate vsock with Unix sockets <dir>/<cid>_<port>.sock').env(
        'ENCLAVE_VSOCK_DEV_DIR',
      ),
    )
    .addOption(
      new Option('--dev-cid <cid>', 'dev mode: this side’s CID')
        .env('ENCLAVE_VSOCK_DEV_CID')
        .argParser(intArg('--dev-cid', 0, 0xfffffffe)),
    )
    .addHelpText(
      'after',
      `
Exit codes:
  0   stopped by SIGINT/SIGTERM after draining
  1   watchdog failure (missed heartbeat or wrong enclave id) with --on-watchdog-failure exit
  2   invalid arguments or options
  3   cannot listen (port in use, vsock unavailable)
  4   a second SIGINT/SIGTERM cut the drain short (tunnelled connections were dropped)
  70  unexpected internal error

Examples:
  enclave-bridge --forward-env 'APP_*,LOG_LEVEL' --allow-destination '**.amazonaws.com:443'
  ENCLAVE_VSOCK_DEV_DIR=/tmp/vsock enclave-bridge   # dev mode, no vsock needed`,
    )
    .showHelpAfterError()
}

function hostOptions(o: CliOptions): BridgeHostOptions {
  const listenCid =
    o.listenCid === 'any' ? ('any' as const) : intArg('--listen-cid', 0, 0xfffffffe)(o.listenCid)
  return {
    listenCid,
    initPort: o.initPort,
    logPort: o.logPort,
    forwardEnv: o.forwardEnv ?? [],
    forwardAllEnv: o.forwardAllEnv ?? false,
    ...(o.allowDestination ? { allowDestinations: o.allowDestination } : {}),
    ...(o.allowEnclaveCid
      ? { allowEnclaveCids: o.allowEnclaveCid.map((c) => intArg('--allow-enclave-cid', 4, 0xfffffffe)(c)) }
      : {}),
    serverBindHost: o.bindHost,
    proxyProtocol: o.proxyProtocol ?? false,
    onWatchdogFailure: o.onWatchdogFailure === 'wait' ? 'wait' : 'fail',
    drainTimeoutMs: o.drainTimeout,
    idleTimeoutMs: o.idleTimeout,
    maxConnectionsPerTunnel: o.maxConnections,
    ...(o.devDir ? { dev: { dir: o.devDir, ...(o.devCid !== undefined ? { cid: o.devCid } : {}) } } : {}),
  }
}

async function run(argv: string[]): Promise<number> {
  const cmd = program()
  cmd.exitOverride()
  try {
    cmd.parse(argv)
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode
    return code === 0 ? EXIT.ok : EXIT.usage
  }
  const o = cmd.opts<CliOptions>()
  const logger: Logger = pino(
    { level: LEVELS[o.logLevel] ?? 'info', name: 'enclave-bridge' },
    pino.destination(2),
  )

  let host: BridgeHost
  try {
    host = createBridgeHost(hostOptions(o), { logger })
  } catch (err) {
    // commander's InvalidArgumentError (from intArg) or the host's InvalidOptionError.
    process.stderr.write(`enclave-bridge: ${(err as Error).message}\n`)
    return EXIT.usage
  }

  let monitor: Server | undefined
  let exiting: Promise<number> | undefined
  const stop = (code: number, why: string): Promise<number> => {
    exiting ??= (async () => {
      logger.info({ why }, 'shutting down: draining tunnels')
      await host.close()
      await new Promise<void>((resolve) => (monitor ? monitor.close(() => resolve()) : resolve()))
      return code
    })()
    return exiting
  }

  const done = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      if (exiting) {
        // A second signal while draining: exiting drops the remaining connections at once. Not 0:
        // a supervisor or script must be able to tell that connections were cut.
        logger.warn({ signal, exitCode: EXIT.drainCut }, 'second signal: cutting connections')
        process.exit(EXIT.drainCut)
      }
      void stop(EXIT.ok, signal).then(resolve)
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    host.on('failure', (err) => {
      if (o.onWatchdogFailure === 'exit') {
        // As the Go host: exit non-zero so the supervisor restarts us for the next enclave.
        void stop(EXIT.watchdog, err.code).then(resolve)
      }
    })
  })
  host.on('ready', ({ settings }) => {
    const level = LEVELS[settings.logger.level]
    if (settings.logger.level !== '' && level) logger.level = level
  })

  try {
    await host.start()
    if (o.monitor) {
      monitor = await startMonitor(host, { port: o.monitorPort, bindHost: o.monitorHost })
      // The bound port: with --monitor-port 0 the kernel picks one, and scripts read it from here.
      const bound = monitor.address()
      const port = typeof bound === 'object' && bound ? bound.port : o.monitorPort
      logger.info({ port, host: o.monitorHost }, 'monitoring on /metrics and /healthz')
    }
  } catch (err) {
    logger.error({ err }, 'cannot start')
    await host.close({ drainTimeoutMs: 0 })
    return err instanceof BridgeHostError || (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
      ? EXIT.listen
      : EXIT.internal
  }
  return done
}

run(process.argv).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`enclave-bridge: internal error: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exitCode = EXIT.internal
  },
)
