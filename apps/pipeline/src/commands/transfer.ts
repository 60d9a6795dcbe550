import {
  createPipelineClient,
  exitCodeForSignal,
  type Logger,
  MissingValueError,
  type PipelineClient,
  type PipelineConfig,
} from '@enclave/pipeline-cli'
import { progressBar } from '../progress.js'
import { type ClientFlags, clientOptions } from '../settings.js'

export interface TransferFlags extends ClientFlags {
  localpath?: string
  remotepath?: string
  localdir?: string
  remotedir?: string
}

export type TransferKind = 'send-file' | 'recv-file' | 'send-dir' | 'recv-dir'

/** The four transfer commands; Ctrl-C aborts and the destination is left untouched. */
export async function transferCommand(
  kind: TransferKind,
  flags: TransferFlags,
  config: PipelineConfig,
  logger: Logger,
): Promise<number> {
  const isDir = kind.endsWith('-dir')
  const local = required(isDir ? flags.localdir : flags.localpath, isDir ? '--localdir' : '--localpath')
  const remote = required(isDir ? flags.remotedir : flags.remotepath, isDir ? '--remotedir' : '--remotepath')
  const client: PipelineClient = createPipelineClient(await clientOptions(flags, config, logger), { logger })
  const abort = new AbortController()
  let caught: NodeJS.Signals | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    caught = signal
    abort.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const bar = progressBar(kind)
  const options = { signal: abort.signal, ...(bar.listener ? { onProgress: bar.listener } : {}) }
  try {
    const result =
      kind === 'send-file'
        ? await client.sendFile(local, remote, options)
        : kind === 'recv-file'
          ? await client.recvFile(remote, local, options)
          : kind === 'send-dir'
            ? await client.sendDir(local, remote, options)
            : await client.recvDir(remote, local, options)
    bar.stop()
    logger.info({ ...result }, `${kind} done`)
    process.stdout.write(`${JSON.stringify(result)}\n`)
    return 0
  } catch (error) {
    bar.stop()
    if (caught) return exitCodeForSignal(caught)
    throw error
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '')
    throw new MissingValueError(`missing ${flag} (it has no config key)`)
  return value
}
