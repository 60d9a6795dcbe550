import { setTimeout as sleep } from 'node:timers/promises'
import { type Logger, silentLogger } from '@enclave/logger'
import type { DevModeOptions } from '@enclave/vsock-transport'
import { streamLogs, watchStatus } from './host.js'
import {
  APP_LOG_PORT,
  type EnclaveStatus,
  EXIT_FATAL,
  EXIT_INTERRUPTED,
  exitCodeForStatus,
  STATUS_PORT,
} from './status.js'

/** A running enclave (or simulated one), as the host sees it. */
export interface LaunchedEnclave {
  readonly id: string
  readonly cid: number
  /** vsock dev mode for reaching it (simulator); false: real vsock; undefined: vsock-transport's env default. */
  readonly dev: DevModeOptions | false | undefined
  /** Resolves with a reason if the enclave goes away on its own (crash, odyn died). */
  readonly gone: Promise<string>
}

/**
 * Starts and stops an enclave. Everything else on the host (status, logs, exit codes, signals)
 * is the same code for every launcher: nitro-cli on a Nitro host, or processes on this machine.
 */
export interface Launcher {
  readonly kind: string
  launch(signal?: AbortSignal): Promise<LaunchedEnclave>
  terminate(enclave: LaunchedEnclave): Promise<void>
}

/** What a host-side plug-in (egress listener, ingress proxies) gets. */
export interface HostPluginContext {
  /** The running enclave; undefined for 'before-launch' plug-ins. */
  readonly enclave: LaunchedEnclave | undefined
  readonly signal: AbortSignal
  readonly logger: Logger
}

/**
 * The host halves of the networking services. 'before-launch' ones start before the enclave
 * (enclaver's egress listener on 17002, which the enclave dials during start-up); 'after-launch'
 * ones once its CID is known (ingress). All are stopped after the enclave is terminated.
 */
export interface HostPlugin {
  readonly name: string
  readonly phase: 'before-launch' | 'after-launch'
  start(ctx: HostPluginContext): Promise<{ stop(): Promise<void> } | undefined>
}

export interface RunEnclaveOptions {
  readonly launcher: Launcher
  readonly hostPlugins?: readonly HostPlugin[]
  /** Where the enclave's log lines go (stdout). */
  readonly logSink: NodeJS.WritableStream
  /** Aborted on SIGINT/SIGTERM: the enclave is terminated and the result is 109. */
  readonly signal?: AbortSignal
  /** Attempts to reach the status port, 250 ms apart. @default 100 (enclaver's) */
  readonly statusAttempts?: number
  readonly onStatus?: (status: EnclaveStatus) => void
}

export interface RunEnclaveResult {
  readonly exitCode: number
  readonly status: EnclaveStatus | undefined
  readonly reason: 'final' | 'interrupted' | 'gone' | 'status-error'
}

/**
 * enclaver-run's sequence: launch, stream logs (17001), follow the status (17000) until the app is
 * over, terminate. Exit codes: the app's own, 107 signaled, 108 fatal (or the enclave vanished),
 * 109 interrupted.
 */
export async function runEnclave(
  options: RunEnclaveOptions,
  deps: { logger?: Logger } = {},
): Promise<RunEnclaveResult> {
  const logger = (deps.logger ?? silentLogger).child({ component: 'run' })
  const { launcher } = options
  const stop = new AbortController()
  const started: { name: string; stop(): Promise<void> }[] = []
  const startPlugins = async (phase: HostPlugin['phase'], enclave: LaunchedEnclave | undefined) => {
    for (const plugin of options.hostPlugins ?? []) {
      if (plugin.phase !== phase) continue
      const handle = await plugin.start({
        enclave,
        signal: stop.signal,
        logger: logger.child({ plugin: plugin.name }),
      })
      if (handle) started.push({ name: plugin.name, stop: () => handle.stop() })
    }
  }
  const stopPlugins = async () => {
    for (const p of started.splice(0).reverse()) {
      await p
        .stop()
        .catch((err: unknown) => logger.warn({ plugin: p.name, err }, 'host plug-in did not stop cleanly'))
    }
  }
  let enclave: LaunchedEnclave
  try {
    await startPlugins('before-launch', undefined)
    enclave = await launcher.launch(options.signal)
  } catch (err) {
    stop.abort()
    await stopPlugins()
    throw err
  }
  logger.info({ id: enclave.id, cid: enclave.cid, launcher: launcher.kind }, 'started enclave')
  const onAbort = () => stop.abort(options.signal?.reason)
  options.signal?.addEventListener('abort', onAbort, { once: true })
  const logs = streamLogs(`vsock://${enclave.cid}:${APP_LOG_PORT}`, options.logSink, {
    dev: enclave.dev,
    signal: stop.signal,
  })
  let result: RunEnclaveResult
  try {
    await startPlugins('after-launch', enclave)
    const outcome = await Promise.race([
      watchStatus(`vsock://${enclave.cid}:${STATUS_PORT}`, {
        dev: enclave.dev,
        signal: stop.signal,
        attempts: options.statusAttempts ?? 100,
        onStatus: options.onStatus,
        onInvalid: (err, line) => logger.warn({ line, reason: err.message }, 'skipped a bad status line'),
      }).then(
        (status) => ({ kind: 'final' as const, status }),
        (err: unknown) => ({ kind: 'error' as const, err }),
      ),
      enclave.gone.then((reason) => ({ kind: 'gone' as const, reason })),
    ])
    if (options.signal?.aborted) {
      result = { exitCode: EXIT_INTERRUPTED, status: undefined, reason: 'interrupted' }
    } else if (outcome.kind === 'final') {
      result = { exitCode: exitCodeForStatus(outcome.status)!, status: outcome.status, reason: 'final' }
      if (outcome.status.status === 'fatal') logger.error({ error: outcome.status.error }, 'odyn failed')
    } else if (outcome.kind === 'gone') {
      logger.error({ reason: outcome.reason }, 'the enclave went away without a final status')
      result = { exitCode: EXIT_FATAL, status: undefined, reason: 'gone' }
    } else {
      logger.error({ err: outcome.err }, 'lost the status channel')
      result = { exitCode: EXIT_FATAL, status: undefined, reason: 'status-error' }
    }
    // The last log lines may trail the final status by a moment.
    if (result.reason === 'final') await Promise.race([logs.done, sleep(300)])
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    stop.abort()
    logs.close()
    try {
      await launcher.terminate(enclave)
      logger.info({ id: enclave.id }, 'terminated enclave')
    } finally {
      await stopPlugins()
    }
  }
  return result
}
