import { DEFAULT_CONFIG_PATH, isPipelineError, loadConfig } from '@enclave/pipeline-cli'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { GEORGE, PASCAL } from './cats.js'
import { fingerprintCommand, keygenCommand } from './commands/keygen.js'
import { listenCommand } from './commands/listen.js'
import { type RunFlags, runCommand } from './commands/run.js'
import { type TransferKind, transferCommand } from './commands/transfer.js'
import { EXIT, exitCodeFor } from './exit-codes.js'
import { createLogger } from './logger.js'

const EXEC_WARNING = `--allow-exec lets every authorized client run any command as this server's user.
An attestation of an enclave whose pipeline runs with --allow-exec therefore says only "this
image, plus whatever an authorized key chose to run": it no longer pins what the enclave does.`

const EXIT_HELP = `
Exit codes:
  0    success
  1    the operation failed (path refused, not found, checksum mismatch, no space, exec disabled)
  2    bad command line or config (unknown flag, missing value, unreadable identity or config)
  124  run: --timeout expired and the command was killed
  126  run: the command could not be executed
  127  run: the command was not found
  255  no session (cannot connect, TLS failed, server key or attestation refused, client key
       not authorized, server busy)
  run otherwise exits with the remote command's status, or 128+N if signal N killed it.`

function integer(name: string) {
  return (value: string) => {
    const number = Number(value)
    if (!Number.isSafeInteger(number) || number < 0)
      throw new InvalidArgumentError(`${name} must be a non-negative integer`)
    return number
  }
}
function seconds(value: string) {
  const number = Number(value)
  if (!Number.isFinite(number) || number <= 0)
    throw new InvalidArgumentError('--timeout must be a positive number of seconds')
  return number
}
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value]

function connectionOptions(command: Command, role: 'client' | 'server'): Command {
  if (role === 'client') command.option('--cid <cid>', 'the enclave CID (config key cid)', integer('--cid'))
  command
    .option('--port <port>', 'the vsock port (config key port)', integer('--port'))
    .option(
      '--addr <uri>',
      'address instead of --cid/--port: vsock://C:P, unix:///path, tcp://host:port, hvsock:///path:P (config key addr)',
    )
    .option(
      '--dev',
      'dev mode: per-user dev identity (created on first use), trusting itself, plus a dev-NSM attestation of the server key when the dev NSM can start (it proves nothing about hardware: never in production) (config key dev)',
    )
    .option('--identity <path>', "this side's identity file from `pipeline keygen` (config key identity)")
    .addOption(
      new Option(
        '--ciphers <list>',
        'TLS 1.3 suites, ":"-separated, or auto (config key ciphers)',
      ).hideHelp(),
    )
  if (role === 'client') {
    command
      .option(
        '--server-key <fingerprint>',
        'the server key to pin, sha256:...; repeatable (config key server_key)',
        collect,
      )
      .option(
        '--attest',
        'require an attestation document binding the server key, with no fallback to a pinned key (config key attest)',
      )
      .option(
        '--expect-pcr <index=hex>',
        'PCR the attestation must show, which requires an attestation; repeatable (config key expect_pcrs)',
        collect,
      )
      .option(
        '--attestation-root <pem>',
        'root certificate for attestation (default AWS Nitro; dev: the dev NSM)',
      )
      .option(
        '--connect-timeout <ms>',
        'connect timeout in ms (config key connect_timeout_ms)',
        integer('--connect-timeout'),
      )
  }
  return command
}

async function main(argv: string[]): Promise<number> {
  const first = argv[0]
  if (first === '-g' || first === '--george') {
    process.stdout.write(GEORGE)
    return EXIT.OK
  }
  if (first === '-p' || first === '--pascal') {
    process.stdout.write(PASCAL)
    return EXIT.OK
  }

  let result: Promise<number> = Promise.resolve(EXIT.OK)
  const program = new Command('pipeline')
    .description(
      'Run commands and move files into an enclave over mutually authenticated TLS 1.3 (vsock, Unix, TCP).',
    )
    .option('-c, --config <path>', 'TOML config file', DEFAULT_CONFIG_PATH)
    .option('--log-level <level>', 'pino log level on stderr (config key log_level)')
    .option('-g, --george', 'print George, our cat, and exit')
    .option('-p, --pascal', 'print Pascal, our other cat, and exit')
    .addHelpText('after', EXIT_HELP)
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
    })

  const context = async (fallbackLevel: string) => {
    const globals = program.opts<{ config: string; logLevel?: string }>()
    const explicit = program.getOptionValueSource('config') === 'cli'
    const config = await loadConfig(globals.config, { explicit })
    return { config, logger: createLogger((globals.logLevel ?? config.log_level ?? '') || fallbackLevel) }
  }

  connectionOptions(
    program
      .command('listen')
      .description('serve clients (one request per connection, many at once)')
      .option(
        '--authorized-keys <path>',
        'file of client key fingerprints allowed in (config key authorized_keys)',
      )
      .option('--root <dir>', 'folder file operations may touch; repeatable (config key root)', collect)
      .option('--allow-exec', `allow \`run\` (config key allow_exec). ${EXEC_WARNING.replace(/\n/g, ' ')}`)
      .option(
        '--attest',
        'answer attestation requests with the NSM device (with --dev: the dev NSM, which --dev alone uses when it can start) (config key attest)',
      )
      .option(
        '--max-sessions <n>',
        'sessions served at once (config key max_sessions)',
        integer('--max-sessions'),
      ),
    'server',
  ).action(async (flags) => {
    const { config, logger } = await context('info')
    result = listenCommand(flags, config, logger)
  })

  connectionOptions(
    program
      .command('run')
      .description('run a command on the server: --command "shell line" (sh -c) or -- argv (no shell)')
      .argument('[argv...]', 'program and arguments, after --')
      .option('--command <line>', 'a shell command line, run with /bin/sh -c')
      .option('--no-wait', 'return once started and print the PID')
      .option('-i, --stdin', 'forward stdin to the command')
      .option('--timeout <seconds>', 'kill the command after this many seconds (exit 124)', seconds)
      .option(
        '--env <NAME=VALUE>',
        'set a variable for the command; repeatable (nothing else is forwarded)',
        collect,
      )
      .option('--cwd <dir>', 'working folder on the server'),
    'client',
  ).action(async (args: string[], flags: RunFlags) => {
    const { config, logger } = await context('warn')
    result = runCommand(args, flags, config, logger)
  })

  const transfers: Array<[TransferKind, string, string, string]> = [
    ['send-file', 'copy a local file to the server', '--localpath', '--remotepath'],
    ['recv-file', 'copy a file from the server', '--localpath', '--remotepath'],
    ['send-dir', 'copy a local folder to the server (symlinks stay links)', '--localdir', '--remotedir'],
    ['recv-dir', 'copy a folder from the server (symlinks stay links)', '--localdir', '--remotedir'],
  ]
  for (const [kind, description, localFlag, remoteFlag] of transfers) {
    connectionOptions(
      program
        .command(kind)
        .description(description)
        .option(`${localFlag} <path>`, 'path on this machine')
        .option(`${remoteFlag} <path>`, 'path on the server (relative: inside its first --root)'),
      'client',
    ).action(async (flags) => {
      const { config, logger } = await context('warn')
      result = transferCommand(kind, flags, config, logger)
    })
  }

  program
    .command('keygen')
    .description(
      'create an identity file (Ed25519 key + self-signed certificate, mode 0600); prints its fingerprint',
    )
    .requiredOption('--identity <path>', 'file to create')
    .option('--force', 'replace an existing file')
    .action((flags) => {
      result = keygenCommand(flags)
    })
  program
    .command('fingerprint')
    .description('print the key fingerprint of an identity (to pin or to authorize)')
    .option('--identity <path>', 'identity file')
    .option('--dev', 'the per-user dev identity')
    .action((flags) => {
      result = fingerprintCommand(flags)
    })

  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE
    }
    throw error
  }
  return result
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    const message = isPipelineError(error) || error instanceof Error ? error.message : String(error)
    const code = (error as { code?: unknown }).code
    process.stderr.write(`pipeline: ${message}${typeof code === 'string' ? ` [${code}]` : ''}\n`)
    process.exitCode = exitCodeFor(error)
  },
)
