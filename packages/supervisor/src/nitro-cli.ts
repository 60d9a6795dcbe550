import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { type Logger, silentLogger } from '@enclave/logger'
import { NitroCliError } from './errors.js'
import type { LaunchedEnclave, Launcher } from './launcher.js'

/** run-enclave's JSON (nitro-cli's field names). */
export interface NitroEnclaveInfo {
  readonly EnclaveName?: string
  readonly EnclaveID: string
  readonly ProcessID?: number
  readonly EnclaveCID: number
  readonly NumberOfCPUs?: number
  readonly CPUIDs?: readonly number[]
  readonly MemoryMiB?: number
  /** describe-enclaves only. */
  readonly State?: 'RUNNING' | 'TERMINATING' | 'EMPTY' | string
  readonly Flags?: string
}

export interface NitroCliOptions {
  readonly eifPath: string
  readonly cpuCount: number
  readonly memoryMib: number
  /** Omitted: nitro-cli picks one. */
  readonly cid?: number
  readonly debugMode?: boolean
  /** @default "nitro-cli" from PATH */
  readonly nitroCli?: string
  /** Per-command timeout, ms. @default 120000 */
  readonly timeoutMs?: number
}

/** Launches through the nitro-cli executable (run-enclave, describe-enclaves, console, terminate-enclave). */
export class NitroCliLauncher implements Launcher {
  readonly kind = 'nitro-cli'
  readonly #options: NitroCliOptions
  readonly #logger: Logger
  readonly #consoles = new Map<string, ChildProcess>()
  readonly #gone = new Map<string, (reason: string) => void>()

  constructor(options: NitroCliOptions, deps: { logger?: Logger } = {}) {
    this.#options = { ...options }
    this.#logger = (deps.logger ?? silentLogger).child({ component: 'nitro-cli' })
  }

  /** Runs one nitro-cli command and parses its JSON stdout; a failure is a NitroCliError with stderr. */
  async command<T>(args: readonly string[], signal?: AbortSignal): Promise<T> {
    const file = this.#options.nitroCli ?? 'nitro-cli'
    const { stdout, stderr, error } = await new Promise<{
      stdout: string
      stderr: string
      error: Error | null
    }>((resolve) => {
      execFile(
        file,
        args,
        { timeout: this.#options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024, signal },
        (err, out, errOut) => resolve({ stdout: String(out), stderr: String(errOut), error: err }),
      )
    })
    if (error) throw new NitroCliError(args[0] ?? '', stderr, { cause: error })
    try {
      return JSON.parse(stdout) as T
    } catch (cause) {
      throw new NitroCliError(args[0] ?? '', `stdout is not JSON: ${stdout.slice(0, 200)}`, { cause })
    }
  }

  async launch(signal?: AbortSignal): Promise<LaunchedEnclave> {
    const o = this.#options
    const args = [
      'run-enclave',
      '--cpu-count',
      String(o.cpuCount),
      '--memory',
      String(o.memoryMib),
      '--eif-path',
      o.eifPath,
    ]
    if (o.cid !== undefined) args.push('--enclave-cid', String(o.cid))
    if (o.debugMode) args.push('--debug-mode')
    const info = await this.command<NitroEnclaveInfo>(args, signal)
    if (typeof info?.EnclaveID !== 'string' || !Number.isInteger(info.EnclaveCID)) {
      throw new NitroCliError('run-enclave', `unexpected output: ${JSON.stringify(info).slice(0, 200)}`)
    }
    let me: NitroEnclaveInfo | undefined
    try {
      me = (await this.describe()).find((e) => e.EnclaveID === info.EnclaveID)
    } catch (err) {
      this.#logger.warn({ err }, 'describe-enclaves failed after run-enclave')
    }
    if (me?.State !== 'RUNNING') {
      // Do not leave a half-started enclave behind.
      await this.command(['terminate-enclave', '--enclave-id', info.EnclaveID]).catch(() => {})
      throw new NitroCliError(
        'describe-enclaves',
        `enclave ${info.EnclaveID} is ${me?.State ?? 'not listed'} after run-enclave`,
      )
    }
    const gone = new Promise<string>((resolve) => this.#gone.set(info.EnclaveID, resolve))
    if (o.debugMode) this.#attachConsole(info.EnclaveID)
    // dev undefined: real vsock, unless ENCLAVE_VSOCK_DEV_DIR is set (tests with a fake nitro-cli).
    return { id: info.EnclaveID, cid: info.EnclaveCID, dev: undefined, gone }
  }

  describe(): Promise<NitroEnclaveInfo[]> {
    return this.command<NitroEnclaveInfo[]>(['describe-enclaves'])
  }

  async terminate(enclave: LaunchedEnclave): Promise<void> {
    this.#consoles.get(enclave.id)?.kill()
    this.#consoles.delete(enclave.id)
    this.#gone.delete(enclave.id)
    const out = await this.command<{ Terminated?: boolean }>([
      'terminate-enclave',
      '--enclave-id',
      enclave.id,
    ])
    if (out?.Terminated !== true) {
      throw new NitroCliError(
        'terminate-enclave',
        `enclave ${enclave.id} was not terminated: ${JSON.stringify(out)}`,
      )
    }
  }

  // Debug mode: the console's lines are logged under their own component, as enclaver-run does.
  #attachConsole(id: string): void {
    const child = spawn(this.#options.nitroCli ?? 'nitro-cli', ['console', '--enclave-id', id], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    child.on('error', (err) => this.#logger.warn({ err }, 'cannot attach the console'))
    this.#consoles.set(id, child)
    const log = this.#logger.child({ component: 'nitro-cli::console' })
    createInterface({ input: child.stdout! }).on('line', (line) => log.info({ line }, 'console'))
  }
}
