import type { KeyObject } from 'node:crypto'
import { InvalidOptionError } from './errors.js'

export interface EnclaveApiOptions {
  /** TCP port (the manifest's api.listen_port); 0 picks a free one. */
  port: number
  /** Listen address; loopback so only the enclave's own processes reach it. @default 127.0.0.1 */
  host?: string
  /** Largest request body, bytes. @default 1048576 */
  maxBodyBytes?: number
  /** (client key, nonce) pairs remembered for replay protection. @default 4096 */
  replayCacheSize?: number
  /** The enclave's P-384 private key for /v1/encryption/*. @default a new key from the NSM's randomness */
  encryptionKey?: KeyObject
  /** Concurrent connections. @default 64 */
  maxConnections?: number
}

export interface ResolvedOptions {
  readonly port: number
  readonly host: string
  readonly maxBodyBytes: number
  readonly replayCacheSize: number
  readonly encryptionKey: KeyObject | undefined
  readonly maxConnections: number
}

export const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  maxBodyBytes: 1024 * 1024,
  replayCacheSize: 4096,
  maxConnections: 64,
})

function positiveInteger(name: string, value: unknown, fallback: number): number {
  const v = value ?? fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new InvalidOptionError(`${name} must be a positive integer, got ${String(value)}`)
  }
  return v
}

export function resolveOptions(options: EnclaveApiOptions): ResolvedOptions {
  if (!options || !Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new InvalidOptionError(`port must be an integer in 0..65535, got ${String(options?.port)}`)
  }
  const key = options.encryptionKey
  if (
    key !== undefined &&
    (key.type !== 'private' ||
      key.asymmetricKeyType !== 'ec' ||
      key.asymmetricKeyDetails?.namedCurve !== 'secp384r1')
  ) {
    throw new InvalidOptionError('encryptionKey must be a P-384 (secp384r1) private KeyObject')
  }
  return Object.freeze({
    port: options.port,
    host: options.host ?? DEFAULTS.host,
    maxBodyBytes: positiveInteger('maxBodyBytes', options.maxBodyBytes, DEFAULTS.maxBodyBytes),
    replayCacheSize: positiveInteger('replayCacheSize', options.replayCacheSize, DEFAULTS.replayCacheSize),
    encryptionKey: key,
    maxConnections: positiveInteger('maxConnections', options.maxConnections, DEFAULTS.maxConnections),
  })
}
