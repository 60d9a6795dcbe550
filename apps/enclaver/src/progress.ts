import type { BuildProgress } from '@enclave/builder'
import { Presets, SingleBar } from 'cli-progress'

const MIB = 1024 * 1024

/** A progress bar on stderr for `enclaver build`; only made when stderr is a terminal. */
export function createProgressBar(): { update: (p: BuildProgress) => void; stop: () => void } {
  const bar = new SingleBar(
    {
      stream: process.stderr,
      format: ' {phase} |{bar}| {percentage}% {value}/{total} {unit}',
      hideCursor: true,
      clearOnComplete: true,
    },
    Presets.shades_classic,
  )
  let started = false
  let phase = ''
  return {
    update: (p) => {
      const unit = p.phase === 'scan' ? 'layers' : 'MiB'
      const scale = p.phase === 'scan' ? 1 : MIB
      const total = Math.max(1, Math.ceil(p.total / scale))
      const value = p.phase === 'done' ? total : Math.min(total, Math.floor(p.done / scale))
      if (!started) {
        bar.start(total, value, { phase: p.phase, unit })
        started = true
      } else if (p.phase !== phase) {
        bar.setTotal(total)
      }
      phase = p.phase
      bar.update(value, { phase: p.phase, unit })
    },
    stop: () => {
      if (started) bar.stop()
    },
  }
}
