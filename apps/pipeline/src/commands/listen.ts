import { createPipelineServer, type Logger, type PipelineConfig } from '@enclave/pipeline-cli'
import { type ServerFlags, serverOptions } from '../settings.js'

/** `pipeline listen`: serves until SIGINT/SIGTERM, then drains sessions and exits 0. */
export async function listenCommand(
  flags: ServerFlags,
  config: PipelineConfig,
  logger: Logger,
): Promise<number> {
  const options = await serverOptions(flags, config, logger)
  const server = await createPipelineServer(options, { logger })
  // One line on stdout so scripts can learn the key to pin and the bound address.
  process.stdout.write(`${JSON.stringify({ listening: server.address, fingerprint: server.fingerprint })}\n`)
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'shutting down')
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      server.close({ graceMs: 5000 }).then(resolve, resolve)
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  return 0
}
