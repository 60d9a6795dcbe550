import { createRequire } from 'node:module'
import type { ProgressListener } from '@enclave/pipeline-cli'
import type cliProgressModule from 'cli-progress'

const require = createRequire(import.meta.url)

/** A progress bar on stderr when it is a terminal; otherwise nothing (logs and pipes stay clean). */
export function progressBar(label: string): { listener: ProgressListener | undefined; stop(): void } {
  if (!process.stderr.isTTY) return { listener: undefined, stop: () => undefined }
  // Loaded here, not at start: only a transfer on a terminal draws a bar.
  const cliProgress = require('cli-progress') as typeof cliProgressModule
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {value}/{total} MiB | {eta_formatted}`,
      formatValue: (value, _options, type) =>
        type === 'value' || type === 'total' ? (value / 2 ** 20).toFixed(1) : String(value),
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  )
  let started = false
  return {
    listener: (done, total) => {
      if (!started) {
        bar.start(total ?? done, 0)
        started = true
      }
      if (total !== undefined) bar.setTotal(total)
      bar.update(done)
    },
    stop: () => {
      if (started) bar.stop()
    },
  }
}
