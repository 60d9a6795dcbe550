import {
  createPipelineClient,
  exitCodeForSignal,
  InvalidOptionError,
  type Logger,
  type PipelineConfig,
  type RunningCommand,
} from '@enclave/pipeline-cli'
import { EXIT } from '../exit-codes.js'
import { type ClientFlags, clientOptions } from '../settings.js'

export interface RunFlags extends ClientFlags {
  command?: string
  wait?: boolean
  stdin?: boolean
  timeout?: number
  env?: string[]
  cwd?: string
}

function parseEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const pair of pairs) {
    const at = pair.indexOf('=')
    if (at <= 0) throw new InvalidOptionError(`--env expects NAME=VALUE, got ${JSON.stringify(pair)}`)
    env[pair.slice(0, at)] = pair.slice(at + 1)
  }
  return env
}

/** `pipeline run`: streams the remote command's output and exits with its status. */
export async function runCommand(
  argv: string[],
  flags: RunFlags,
  config: PipelineConfig,
  logger: Logger,
): Promise<number> {
  if ((flags.command === undefined) === (argv.length === 0)) {
    throw new InvalidOptionError('run needs either --command "..." or a command after --, not both')
  }
  const client = createPipelineClient(await clientOptions(flags, config, logger), { logger })
  const noWait = flags.wait === false
  let running: RunningCommand | undefined
  let interrupts = 0
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    interrupts++
    // First Ctrl-C goes to the remote command; a second one gives up on it.
    if (running && interrupts === 1) running.kill(signal)
    else process.exit(exitCodeForSignal(signal))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    const result = await client.run(
      {
        ...(flags.command !== undefined ? { command: flags.command } : { argv }),
        env: parseEnv(flags.env ?? []),
        ...(flags.cwd !== undefined ? { cwd: flags.cwd } : {}),
        ...(flags.timeout !== undefined ? { timeoutMs: Math.max(1, Math.round(flags.timeout * 1000)) } : {}),
        noWait,
      },
      {
        ...(flags.stdin ? { stdin: process.stdin } : {}),
        stdout: process.stdout,
        stderr: process.stderr,
        onStarted: (command) => {
          running = command
        },
      },
    )
    if (noWait) {
      process.stdout.write(`${result.pid}\n`)
      return EXIT.OK
    }
    if (result.timedOut) {
      logger.warn({ timeoutSeconds: flags.timeout }, 'the command timed out and was killed')
      return EXIT.TIMEOUT
    }
    if (result.signal !== undefined) return exitCodeForSignal(result.signal)
    return result.code ?? EXIT.FAILED
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (flags.stdin) process.stdin.destroy()
  }
}
