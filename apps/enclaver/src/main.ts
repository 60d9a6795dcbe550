import { Command, CommanderError } from 'commander'
import { pino } from 'pino'
import { commands } from './commands/index.js'
import type { CommandContext } from './context.js'
import { EXIT, exitCodeFor } from './exit-codes.js'

// Thin on purpose: parse argv, make the logger, dispatch, map errors to exit codes.
async function main(argv: readonly string[]): Promise<number> {
  const logger = pino(
    { name: 'enclaver', level: process.env.ENCLAVER_LOG_LEVEL ?? 'info' },
    pino.destination({ fd: 2, sync: true }),
  )
  const abort = new AbortController()
  const onSignal = (sig: NodeJS.Signals): void => {
    logger.warn({ signal: sig }, 'interrupted, stopping')
    abort.abort(new Error(`interrupted by ${sig}`))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const ctx: CommandContext = {
    logger,
    out: (text) => {
      process.stdout.write(text)
    },
    interactive: process.stderr.isTTY === true,
    signal: abort.signal,
  }
  const program = new Command('enclaver')
    .description('Build and inspect AWS Nitro Enclave images (EIF) from container images')
    .exitOverride()
    .showHelpAfterError()
  for (const register of commands) register(program, ctx)

  try {
    await program.parseAsync(argv as string[], { from: 'node' })
    return EXIT.ok
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage
    }
    if (abort.signal.aborted) return EXIT.interrupted
    const code = (err as { code?: unknown }).code
    // Typed errors already name the problem and the fix: no stack for those.
    if (typeof code === 'string' && code.startsWith('ENCLAVE_'))
      logger.error({ code }, (err as Error).message)
    else logger.error({ err }, (err as Error)?.message ?? String(err))
    return exitCodeFor(err)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code
    // After an interruption something may still hold the event loop (a hung engine socket): give
    // cleanup a moment, then leave anyway. The timer does not keep a finished process alive.
    if (code === EXIT.interrupted) setTimeout(() => process.exit(code), 2000).unref()
  },
  (err: unknown) => {
    process.stderr.write(`enclaver: ${String(err)}\n`)
    process.exitCode = EXIT.failure
  },
)
