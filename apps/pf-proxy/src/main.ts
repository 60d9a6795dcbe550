import { createRequire } from 'node:module'
import type { Tunnel } from '@enclave/tunnel'
import type { TransportAddress } from '@enclave/vsock-transport'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { Allowlist, parseIpAddr, parseVsockAddr, parseVsockTarget, type VsockTarget } from './addresses.js'
import { type CommonSettings, startTool, type ToolSpec } from './commands.js'
import { EXIT, exitCodeOf, UsageError } from './errors.js'
import { createLogger, LOG_LEVELS, type LogLevel, levelFromRustLog } from './logger.js'

// package.json sits one level above both src/main.ts and the built dist/main.js.
const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version

interface Chosen {
  spec: ToolSpec
  common: CommonSettings
  level: LogLevel
}

interface CommonFlags {
  logLevel?: LogLevel
  connectTimeout: number
  idleTimeout: number
  maxConnections: number
  drainTimeout: number
  devDir?: string
}

const ADDRESS_HELP = `
Addresses:
  --ip-addr     IP:PORT (127.0.0.1:8080, [::1]:8080) or a URI (tcp://, unix:///path)
  --vsock-addr  CID:PORT (CID a number or any|local|host|parent) or a URI:
                vsock://CID:PORT, unix:///path.sock, hvsock:///path/v.sock:PORT, tcp://host:port
  With --dev-dir DIR (or ENCLAVE_VSOCK_DEV_DIR), vsock://CID:PORT is the Unix socket DIR/CID_PORT.sock.

Logs: JSON lines on stderr; level from --log-level, else RUST_LOG (e.g. "info", "pf_proxy=debug").
Exit codes: 0 stopped by SIGINT/SIGTERM (drained), 1 internal error, 2 usage, 3 cannot listen,
            4 second signal while draining (connections cut).`

function parser<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text)
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message)
    }
  }
}

function integer(min: number, max: number): (text: string) => number {
  return (text) => {
    const value = Number(text)
    if (!/^\d+$/.test(text) || value < min || value > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`)
    }
    return value
  }
}

function addCommon(command: Command): Command {
  return command
    .addOption(
      new Option('--log-level <level>', 'log level (default: from RUST_LOG, else info)').choices(LOG_LEVELS),
    )
    .addOption(
      new Option('--connect-timeout <ms>', 'give up dialling a target (and reading a header) after this long')
        .default(10_000)
        .argParser(integer(1, 2_147_483_647)),
    )
    .addOption(
      new Option('--idle-timeout <ms>', 'close a connection idle in both directions this long (0 = never)')
        .default(0)
        .argParser(integer(0, 2_147_483_647)),
    )
    .addOption(
      new Option('--max-connections <n>', 'connections at once; more are closed on arrival')
        .default(1024)
        .argParser(integer(1, 1_000_000)),
    )
    .addOption(
      new Option('--drain-timeout <ms>', 'on SIGINT/SIGTERM, wait this long for connections to finish')
        .default(10_000)
        .argParser(integer(0, 2_147_483_647)),
    )
    .option('--dev-dir <dir>', 'vsock dev mode: vsock://CID:PORT becomes the Unix socket DIR/CID_PORT.sock')
    .addHelpText('after', ADDRESS_HELP)
}

const ipAddrOption = (): Option =>
  new Option('-i, --ip-addr <ip:port>', 'TCP address (IP:PORT) or transport URI')
    .argParser(parser((text) => parseIpAddr('--ip-addr', text)))
    .makeOptionMandatory()
const vsockAddrOption = (): Option =>
  new Option('-v, --vsock-addr <cid:port>', 'vsock address (CID:PORT) or transport URI')
    .argParser(parser((text) => parseVsockAddr('--vsock-addr', text)))
    .makeOptionMandatory()

/** Builds the CLI; `choose` receives the parsed tool and settings. */
function buildProgram(choose: (chosen: Chosen) => void): Command {
  const program = new Command('pf-proxy')
    .description("Port-forwarding proxies between TCP and vsock (Sentient's pf-proxy tools)")
    .version(VERSION)
    .exitOverride()
    .showSuggestionAfterError()
    .addHelpText('after', ADDRESS_HELP)
  const pick = (spec: ToolSpec, flags: CommonFlags): void => {
    if (flags.devDir !== undefined && !flags.devDir.startsWith('/')) {
      throw new UsageError(`--dev-dir ${JSON.stringify(flags.devDir)}: must be an absolute path`)
    }
    choose({
      spec,
      level: flags.logLevel ?? levelFromRustLog(process.env.RUST_LOG) ?? 'info',
      common: {
        connectTimeoutMs: flags.connectTimeout,
        idleTimeoutMs: flags.idleTimeout,
        maxConnections: flags.maxConnections,
        drainTimeoutMs: flags.drainTimeout,
        dev: flags.devDir === undefined ? undefined : { dir: flags.devDir },
      },
    })
  }
  type AddrFlags = CommonFlags & { ipAddr: TransportAddress; vsockAddr: TransportAddress }

  addCommon(
    program
      .command('ip-to-vsock')
      .alias('ip2vs')
      .description('listen on TCP, forward every connection to one vsock address')
      .addOption(ipAddrOption())
      .addOption(vsockAddrOption())
      .action((flags: AddrFlags) =>
        pick({ tool: 'ip-to-vsock', ipAddr: flags.ipAddr, vsockAddr: flags.vsockAddr }, flags),
      ),
  )
  addCommon(
    program
      .command('vsock-to-ip')
      .alias('vs2ip')
      .description('listen on vsock, forward every connection to one TCP address')
      .addOption(vsockAddrOption())
      .addOption(ipAddrOption())
      .action((flags: AddrFlags) =>
        pick({ tool: 'vsock-to-ip', ipAddr: flags.ipAddr, vsockAddr: flags.vsockAddr }, flags),
      ),
  )
  addCommon(
    program
      .command('ip-to-vsock-transparent')
      .alias('ip2vs-tp')
      .description(
        "listen on TCP behind an iptables REDIRECT/DNAT rule; send each connection's original destination as a header, then relay to vsock",
      )
      .addOption(ipAddrOption())
      .addOption(vsockAddrOption())
      .action((flags: AddrFlags) =>
        pick({ tool: 'ip-to-vsock-transparent', ipAddr: flags.ipAddr, vsockAddr: flags.vsockAddr }, flags),
      ),
  )
  addCommon(
    program
      .command('vsock-to-ip-transparent')
      .alias('vs2ip-tp')
      .description('listen on vsock; read the destination header of each connection and dial it over TCP')
      .addOption(vsockAddrOption())
      .addOption(
        new Option(
          '--allow <cidr[:port]>',
          'dial only destinations in this CIDR, IP or IP:PORT (repeatable); required unless --allow-any',
        )
          .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
          .default([]),
      )
      .option(
        '--allow-any',
        'dial any destination the header names, except loopback, link-local (169.254.0.0/16, fe80::/10) and metadata (169.254.169.254, fd00:ec2::254) addresses, which only --allow admits',
      )
      .action((flags: CommonFlags & { vsockAddr: TransportAddress; allow: string[]; allowAny?: boolean }) => {
        // Least privilege: a peer must not be able to make this host dial anything by default.
        if (flags.allow.length === 0 && !flags.allowAny) {
          throw new UsageError(
            'vsock-to-ip-transparent dials the destination each peer names in its header: restrict it with --allow CIDR[:PORT] (repeatable), or pass --allow-any to dial any destination except loopback, link-local and metadata addresses',
          )
        }
        pick(
          {
            tool: 'vsock-to-ip-transparent',
            vsockAddr: flags.vsockAddr,
            allow: new Allowlist('--allow', flags.allow, { allowAny: flags.allowAny === true }),
          },
          flags,
        )
      }),
  )
  addCommon(
    program
      .command('transparent-port-to-vsock')
      .aliases(['tpp2vs', 'port-to-vsock-transparent'])
      .description(
        'listen on TCP behind an iptables REDIRECT/DNAT rule; relay each connection to vsock CID:<its original port> (no header)',
      )
      .addOption(ipAddrOption())
      .addOption(
        new Option(
          '-v, --vsock <cid>',
          "vsock CID (or hvsock:///path); the port is each connection's original port",
        )
          .argParser(parser((text) => parseVsockTarget('--vsock', text)))
          .makeOptionMandatory(),
      )
      .action((flags: CommonFlags & { ipAddr: TransportAddress; vsock: VsockTarget }) =>
        pick({ tool: 'transparent-port-to-vsock', ipAddr: flags.ipAddr, vsock: flags.vsock }, flags),
      ),
  )
  return program
}

/** Runs the CLI to completion and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let chosen: Chosen | undefined
  const program = buildProgram((value) => {
    chosen = value
  })
  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage
    if (error instanceof UsageError) {
      process.stderr.write(`error: ${error.message}\n`)
      return EXIT.usage
    }
    throw error
  }
  if (!chosen) return EXIT.usage
  return serve(chosen)
}

async function serve({ spec, common, level }: Chosen): Promise<number> {
  const logger = createLogger(level, spec.tool)
  let tunnel: Tunnel
  try {
    tunnel = await startTool(spec, common, logger)
  } catch (error) {
    logger.fatal({ err: error }, (error as Error).message)
    process.stderr.write(`error: ${(error as Error).message}\n`)
    return exitCodeOf(error)
  }
  logger.info({ listen: tunnel.address }, 'pf-proxy ready')
  return new Promise<number>((resolve) => {
    let signals = 0
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1
      if (signals > 1) {
        logger.warn(
          { signal, stats: tunnel.stats() },
          'second signal: exiting without waiting for connections',
        )
        resolve(EXIT.forced)
        return
      }
      logger.info({ signal, active: tunnel.stats().active }, 'shutting down: draining connections')
      tunnel.close().then(
        () => {
          logger.info({ stats: tunnel.stats() }, 'stopped')
          resolve(EXIT.ok)
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed')
          resolve(EXIT.internal)
        },
      )
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit explicitly: a forced stop must not wait for sockets still open.
    process.exit(code)
  },
  (error: unknown) => {
    process.stderr.write(`internal error: ${(error as Error)?.stack ?? String(error)}\n`)
    process.exit(EXIT.internal)
  },
)
