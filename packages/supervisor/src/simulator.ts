import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { LaunchFailedError } from './errors.js'
import type { LaunchedEnclave, Launcher } from './launcher.js'

/** Env variables odyn reads in the simulator (besides vsock-transport's dev-mode ones). */
export const DEV_NSM_PCRS_ENV = 'ENCLAVE_DEV_NSM_PCRS'

export interface SimulatorOptions {
  /** How to run odyn, e.g. [process.execPath, '/path/to/odyn.js']. */
  readonly odyn: readonly string[]
  /** Folder with enclaver.yaml (and odyn.yaml), passed as --config-dir. */
  readonly configDir: string
  /** The app command (what follows `--`). */
  readonly app: readonly string[]
  /** The simulated enclave's CID. @default 16 */
  readonly cid?: number
  /** PCR values for the dev NSM, e.g. the EIF's measurements (index → hex). */
  readonly pcrs?: Readonly<Record<number, string>>
  /** Show odyn's own console (its stderr) on ours. @default false */
  readonly debugMode?: boolean
  /** Extra odyn arguments (before `--`). */
  readonly odynArgs?: readonly string[]
  readonly env?: NodeJS.ProcessEnv
  /**
   * Folder of the emulated vsock sockets, when the host side must know it before launch (the
   * egress listener the enclave dials during start-up). The caller owns (and removes) it.
   * @default a fresh temp dir, removed on terminate
   */
  readonly vsockDir?: string
  /** SIGTERM → SIGKILL grace when terminating, ms. @default 15000 */
  readonly graceMs?: number
}

/**
 * Runs odyn as a process on this machine with vsock emulated over Unix sockets in a fresh temp
 * dir (vsock-transport dev mode) and the dev NSM reporting the given PCRs. The host side talks to
 * it exactly as to a Nitro enclave.
 */
export class SimulatorLauncher implements Launcher {
  readonly kind = 'simulator'
  readonly #options: SimulatorOptions
  readonly #running = new Map<string, { child: ChildProcess; dir: string; ownDir: boolean }>()

  constructor(options: SimulatorOptions) {
    if (options.odyn.length === 0) throw new LaunchFailedError('odyn: the command that runs odyn is empty')
    if (options.app.length === 0)
      throw new LaunchFailedError('the simulator needs the app command after "--"')
    this.#options = { ...options }
  }

  async launch(): Promise<LaunchedEnclave> {
    const o = this.#options
    const cid = o.cid ?? 16
    const ownDir = o.vsockDir === undefined
    const dir = o.vsockDir ?? mkdtempSync(join(tmpdir(), 'enclave-sim-'))
    const [file, ...pre] = o.odyn
    const child = spawn(file!, [...pre, '--config-dir', o.configDir, ...(o.odynArgs ?? []), '--', ...o.app], {
      env: {
        ...(o.env ?? process.env),
        ENCLAVE_VSOCK_DEV_DIR: dir,
        ENCLAVE_VSOCK_DEV_CID: String(cid),
        ...(o.pcrs ? { [DEV_NSM_PCRS_ENV]: JSON.stringify(o.pcrs) } : {}),
      },
      stdio: ['ignore', 'ignore', o.debugMode ? 'inherit' : 'ignore'],
    })
    try {
      await once(child, 'spawn')
    } catch (cause) {
      if (ownDir) rmSync(dir, { recursive: true, force: true })
      throw new LaunchFailedError(`cannot start odyn (${JSON.stringify(o.odyn)})`, { cause })
    }
    const id = `sim-${child.pid}`
    this.#running.set(id, { child, dir, ownDir })
    const gone = new Promise<string>((resolve) =>
      child.once('exit', (code, signal) => resolve(`odyn exited (${signal ?? `code ${code}`})`)),
    )
    return { id, cid, dev: { dir, cid }, gone }
  }

  async terminate(enclave: LaunchedEnclave): Promise<void> {
    const entry = this.#running.get(enclave.id)
    if (!entry) return
    this.#running.delete(enclave.id)
    const { child, dir, ownDir } = entry
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const timeout = sleep(this.#options.graceMs ?? 15_000, 'timeout' as const)
      if ((await Promise.race([exited, timeout])) === 'timeout') child.kill('SIGKILL')
      await exited
    }
    if (ownDir) rmSync(dir, { recursive: true, force: true })
  }
}
