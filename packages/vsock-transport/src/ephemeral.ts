import { randomInt } from 'node:crypto'
import { existsSync } from 'node:fs'
import type net from 'node:net'
import { VMADDR_PORT_ANY } from './address.js'
import { TransportError } from './errors.js'
import { listenUnixPath } from './stream.js'

/** Ports picked for "any port" on path-mapped transports: the IANA dynamic range. */
const FIRST = 49152
const LAST = 65535
const TRIES = 64

/**
 * Listens on the Unix socket that stands for `port` (dev-mode vsock, hybrid vsock). Port 0 or
 * VMADDR_PORT_ANY picks a free port, like the kernel does for AF_VSOCK. Resolves with the port used.
 */
export async function listenPortPath(
  server: net.Server,
  port: number,
  pathFor: (port: number) => string,
  addressFor: (port: number) => string,
  backlog: number,
  signal: AbortSignal | undefined,
): Promise<number> {
  if (port !== 0 && port !== VMADDR_PORT_ANY) {
    await listenUnixPath(server, pathFor(port), backlog, addressFor(port), signal)
    return port
  }
  let lastError: unknown
  for (let i = 0; i < TRIES; i++) {
    const candidate = randomInt(FIRST, LAST + 1)
    if (existsSync(pathFor(candidate))) continue
    try {
      await listenUnixPath(server, pathFor(candidate), backlog, addressFor(candidate), signal)
      return candidate
    } catch (err) {
      if (!(err instanceof TransportError) || err.code !== 'ENCLAVE_VSOCK_ADDRESS_IN_USE') throw err
      lastError = err
    }
  }
  throw lastError ?? new Error(`no free port found after ${TRIES} tries`)
}
