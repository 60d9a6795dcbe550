import { fromHex, pemToDer } from './bytes.js'
import { InvalidOptionError } from './errors.js'
import { AWS_NITRO_ROOT_G1_PEM } from './roots.js'
import { fingerprintOf } from './x509.js'

/** What a document must satisfy beyond a valid signature and chain. Every field is optional. */
export interface AttestationPolicy {
  /** Expected PCR values by index (hex or bytes); any subset. */
  pcrs?: Readonly<Record<number, string | Uint8Array>> | ReadonlyMap<number, string | Uint8Array>
  /** Accept debug-mode documents (PCR0 all zero). @default false */
  allowDebug?: boolean
  /** Required nonce; null requires its absence; undefined does not check. */
  nonce?: Uint8Array | null
  /** Required user_data; null requires its absence; undefined does not check. */
  userData?: Uint8Array | null
  /** Required public_key; null requires its absence; undefined does not check. */
  publicKey?: Uint8Array | null
  /** Maximum age of the document's timestamp at the verification time, in ms. @default no limit */
  maxAgeMs?: number
  /** Tolerated clock difference for a timestamp ahead of the verification time, in ms. @default 60000 */
  clockSkewMs?: number
  /** Verification time (Date or ms since the epoch). @default now */
  at?: Date | number
}

export interface VerifierOptions extends AttestationPolicy {
  /** Trusted roots, PEM text or DER bytes. @default [AWS Nitro Enclaves Root G1] */
  roots?: readonly (string | Uint8Array)[]
  /** Most certificates (and verified issuer links) kept in the cache. @default 256 */
  cacheSize?: number
}

export interface ResolvedPolicy {
  readonly pcrs: ReadonlyMap<number, Uint8Array>
  readonly allowDebug: boolean
  readonly nonce: Uint8Array | null | undefined
  readonly userData: Uint8Array | null | undefined
  readonly publicKey: Uint8Array | null | undefined
  readonly maxAgeMs: number | undefined
  readonly clockSkewMs: number
  readonly at: number | undefined
}

export const DEFAULTS = Object.freeze({ cacheSize: 256, clockSkewMs: 60_000, allowDebug: false })

function resolvePcrs(pcrs: AttestationPolicy['pcrs']): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>()
  if (pcrs === undefined) return out
  const entries = pcrs instanceof Map ? [...pcrs.entries()] : Object.entries(pcrs)
  for (const [rawIndex, rawValue] of entries) {
    const index = Number(rawIndex)
    if (!Number.isInteger(index) || index < 0 || index > 31) {
      throw new InvalidOptionError(`pcrs: index ${String(rawIndex)} is not an integer in 0..31`)
    }
    const value = typeof rawValue === 'string' ? fromHex(rawValue) : rawValue
    if (!(value instanceof Uint8Array) || ![32, 48, 64].includes(value.length)) {
      throw new InvalidOptionError(
        `pcrs: PCR${index} must be 48 bytes (96 hex digits); got ${String(rawValue)}`,
      )
    }
    out.set(index, value)
  }
  return out
}

function optionalBytes(name: string, value: unknown): Uint8Array | null | undefined {
  if (value === undefined || value === null) return value
  if (!(value instanceof Uint8Array))
    throw new InvalidOptionError(`${name} must be a Uint8Array, null or undefined`)
  return value
}

function nonNegative(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidOptionError(`${name} must be a finite number ≥ 0, got ${String(value)}`)
  }
  return value
}

function resolveTime(at: unknown): number | undefined {
  if (at === undefined) return undefined
  const ms = at instanceof Date ? at.getTime() : at
  if (typeof ms !== 'number' || !Number.isFinite(ms))
    throw new InvalidOptionError('at must be a valid Date or ms number')
  return ms
}

/** Resolves a policy once; `base` supplies the fields `policy` leaves undefined. */
export function resolvePolicy(policy: AttestationPolicy, base?: ResolvedPolicy): ResolvedPolicy {
  return Object.freeze({
    pcrs: policy.pcrs === undefined && base ? base.pcrs : resolvePcrs(policy.pcrs),
    allowDebug: policy.allowDebug ?? base?.allowDebug ?? DEFAULTS.allowDebug,
    nonce: policy.nonce === undefined ? base?.nonce : optionalBytes('nonce', policy.nonce),
    userData: policy.userData === undefined ? base?.userData : optionalBytes('userData', policy.userData),
    publicKey:
      policy.publicKey === undefined ? base?.publicKey : optionalBytes('publicKey', policy.publicKey),
    maxAgeMs: nonNegative('maxAgeMs', policy.maxAgeMs) ?? base?.maxAgeMs,
    clockSkewMs: nonNegative('clockSkewMs', policy.clockSkewMs) ?? base?.clockSkewMs ?? DEFAULTS.clockSkewMs,
    at: resolveTime(policy.at) ?? base?.at,
  })
}

/** DER fingerprints of the trusted roots. */
export function resolveRoots(roots: VerifierOptions['roots']): ReadonlySet<string> {
  const list = roots ?? [AWS_NITRO_ROOT_G1_PEM]
  if (!Array.isArray(list) || list.length === 0)
    throw new InvalidOptionError('roots must list at least one certificate')
  const out = new Set<string>()
  list.forEach((root, i) => {
    const der = typeof root === 'string' ? pemToDer(root) : root
    if (!(der instanceof Uint8Array) || der.length === 0) {
      throw new InvalidOptionError(`roots[${i}] must be a PEM certificate or DER bytes`)
    }
    out.add(fingerprintOf(der))
  })
  return out
}

export function resolveCacheSize(size: unknown): number {
  if (size === undefined) return DEFAULTS.cacheSize
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size > 1_000_000) {
    throw new InvalidOptionError(`cacheSize must be an integer in 0..1000000, got ${String(size)}`)
  }
  return size
}
