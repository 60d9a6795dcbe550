import { AbortError, ConnectTimeoutError, connectErrorFrom } from './errors.js'

/**
 * Runs one connect attempt under a timeout and an AbortSignal. `run` receives a signal that fires
 * (with the typed error as its reason) on timeout or abort; it must then release what it holds and
 * reject. Failures come out as typed errors; `detail` (e.g. the dev-mode socket path) goes in their message.
 */
export async function guardedAttempt<T>(
  address: string,
  options: { signal: AbortSignal | undefined; timeoutMs: number | undefined },
  run: (cancel: AbortSignal) => Promise<T>,
  detail = '',
): Promise<T> {
  const { signal, timeoutMs } = options
  if (signal?.aborted)
    throw new AbortError(`connect to ${address} was aborted`, { cause: signal.reason, address })
  const controller = new AbortController()
  const onAbort = () =>
    controller.abort(new AbortError(`connect to ${address} was aborted`, { cause: signal?.reason, address }))
  signal?.addEventListener('abort', onAbort, { once: true })
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(
          () =>
            controller.abort(
              new ConnectTimeoutError(`connect to ${address} did not finish within ${timeoutMs} ms`, {
                address,
              }),
            ),
          timeoutMs,
        )
  try {
    return await run(controller.signal)
  } catch (err) {
    throw connectErrorFrom(controller.signal.aborted ? controller.signal.reason : err, address, detail)
  } finally {
    if (timer) clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}
