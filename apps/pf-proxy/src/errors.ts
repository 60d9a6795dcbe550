/**
 * Typed errors of the pf-proxy app, with stable codes. `exitCodeOf` maps any error to the
 * documented exit code (README table) in one place.
 */

export type PfProxyErrorCode = 'ENCLAVE_PF_PROXY_USAGE' | 'ENCLAVE_PF_PROXY_DESTINATION_DENIED'

export class PfProxyError extends Error {
  readonly code: PfProxyErrorCode
  constructor(code: PfProxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'PfProxyError'
    this.code = code
  }
}

/** A flag is missing or its value is invalid; the message names the flag. Exit code 2. */
export class UsageError extends PfProxyError {
  constructor(message: string) {
    super('ENCLAVE_PF_PROXY_USAGE', message)
    this.name = 'UsageError'
  }
}

/**
 * vsock-to-ip-transparent: the header asked for a destination outside `--allow` (or, with
 * --allow-any, a loopback, link-local or metadata address not listed in `--allow`).
 */
export class DestinationDeniedError extends PfProxyError {
  constructor(destination: string, sensitiveKind?: string) {
    super(
      'ENCLAVE_PF_PROXY_DESTINATION_DENIED',
      sensitiveKind === undefined
        ? `destination ${destination} is not in the --allow list; add it with --allow if it is meant to be reachable`
        : `destination ${destination} is a ${sensitiveKind} address, refused even with --allow-any; add it with --allow if it is meant to be reachable`,
    )
    this.name = 'DestinationDeniedError'
  }
}

/** Documented exit codes (README "Exit codes"). */
export const EXIT = Object.freeze({
  /** Stopped by SIGINT/SIGTERM after draining, or --help. */
  ok: 0,
  /** An unexpected internal error. */
  internal: 1,
  /** Bad flags or addresses. */
  usage: 2,
  /** The listen address cannot be used (in use, no permission, no vsock support). */
  listen: 3,
  /** A second signal arrived while draining: remaining connections were cut. */
  forced: 4,
})

export function exitCodeOf(error: unknown): number {
  const code = (error as { code?: unknown } | null)?.code
  if (code === 'ENCLAVE_PF_PROXY_USAGE') return EXIT.usage
  if (
    code === 'ENCLAVE_TUNNEL_INVALID_OPTIONS' ||
    code === 'ENCLAVE_VSOCK_INVALID_ADDRESS' ||
    code === 'ENCLAVE_VSOCK_INVALID_OPTION'
  ) {
    return EXIT.usage
  }
  if (code === 'ENCLAVE_TUNNEL_LISTEN_FAILED') return EXIT.listen
  return EXIT.internal
}
