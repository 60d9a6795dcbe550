import type { Command } from 'commander'
import type { Logger } from 'pino'

/** What every command gets from main: a logger on stderr, a data sink on stdout, and a shutdown signal. */
export interface CommandContext {
  readonly logger: Logger
  /** Writes data (JSON, text results) to stdout. Logs never go here. */
  readonly out: (text: string) => void
  /** True when stderr is a terminal: progress bars are drawn only then. */
  readonly interactive: boolean
  /** Aborted on SIGINT/SIGTERM. */
  readonly signal: AbortSignal
}

/** A command module adds its subcommand to the program; the action receives the shared context. */
export type RegisterCommand = (program: Command, ctx: CommandContext) => void
