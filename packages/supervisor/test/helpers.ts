import { makeTempDir } from '@enclave/test-helpers'
import { createSupervisor, type Supervisor, type SupervisorOptions } from '../src/index.js'

export const CID = 16

export interface Harness {
  readonly odyn: Supervisor
  readonly dev: { dir: string; cid: number }
  readonly statusAddress: string
  readonly logAddress: string
  readonly dir: string
  cleanup(): Promise<void>
}

/** A supervisor in dev mode (vsock = Unix sockets in a temp dir), not yet started. */
export function harness(options: Partial<SupervisorOptions> & Pick<SupervisorOptions, 'command'>): Harness {
  const temp = makeTempDir('odyn-test-')
  const dev = { dir: temp.path, cid: CID }
  const odyn = createSupervisor({ dev, graceMs: 3000, reaperIntervalMs: 100, ...options })
  return {
    odyn,
    dev,
    dir: temp.path,
    statusAddress: `vsock://${CID}:17000`,
    logAddress: `vsock://${CID}:17001`,
    async cleanup() {
      await odyn.shutdown('SIGKILL').catch(() => {})
      temp.remove()
    },
  }
}
