import type { Logger } from '@enclave/tunnel'
import type { DevModeOptions } from '@enclave/vsock-transport'
import { InvalidOptionsError } from './errors.js'

/** A PEM key and certificate, e.g. from @enclave/attestation's createAttestedTlsCredentials. */
export interface TlsCredentials {
  readonly key: string
  readonly cert: string
}

/**
 * TLS termination inside the enclave (the manifest's ingress[].tls): certFile + keyFile, or a
 * `credentials` provider (an attested certificate) called at start and every `refreshMs`.
 */
export interface IngressTlsOptions {
  /** PEM certificate chain (tls.cert_file). */
  readonly certFile?: string
  /** PEM private key (tls.key_file). */
  readonly keyFile?: string
  /** Makes a key and certificate instead of reading files (attested TLS). */
  readonly credentials?: () => Promise<TlsCredentials>
  /** How often to call `credentials` again (attestation documents age), ms. @default 3600000 */
  readonly refreshMs?: number
  /** PEM CA bundle; when set, clients must present a certificate it signed (mTLS). */
  readonly clientCaFile?: string
}

/** Options of `startIngressHost` (on the parent: TCP listen_port → vsock enclave CID). */
export interface IngressHostOptions {
  /** The manifest's ingress[].listen_port: the host TCP port and the enclave vsock port. */
  readonly listenPort: number
  /** CID of the running enclave. */
  readonly enclaveCid: number
  /** Address to listen on. @default '0.0.0.0' */
  readonly listenHost?: string
  /** Prefix each connection with a PROXY v2 header carrying the client address. @default false */
  readonly proxyProtocol?: boolean
  /** Close a connection idle in both directions for this long, ms; 0 disables. @default 0 */
  readonly idleTimeoutMs?: number
  /** Connections carried at once. @default 1024 */
  readonly maxConnections?: number
  readonly dev?: DevModeOptions | false
}

/** Options of `startIngressEnclave` (inside: vsock listen_port → 127.0.0.1:listen_port). */
export interface IngressEnclaveOptions {
  /** The manifest's ingress[].listen_port: the vsock port and the app's TCP port. */
  readonly listenPort: number
  /** The app's port if it differs (tests). @default listenPort */
  readonly appPort?: number
  /** Terminate TLS here (and mTLS with clientCaFile). @default none: bytes pass through */
  readonly tls?: IngressTlsOptions
  /** Expect a PROXY v2 header from the host half and send one (with TLS details) to the app. @default false */
  readonly proxyProtocol?: boolean
  /** Fail a TLS handshake or PROXY header not finished in this long, ms. @default 10000 */
  readonly handshakeTimeoutMs?: number
  /** Close a connection idle in both directions for this long, ms; 0 disables. @default 0 */
  readonly idleTimeoutMs?: number
  /** Connections carried at once. @default 1024 */
  readonly maxConnections?: number
  /** The vsock listen address. @default `vsock://any:<listenPort>` */
  readonly address?: string
  readonly dev?: DevModeOptions | false
}

export interface Context {
  readonly logger?: Logger
}

export const DEFAULTS = Object.freeze({
  listenHost: '0.0.0.0',
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  maxConnections: 1024,
  refreshMs: 3_600_000,
})

export function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionsError(
      `option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`,
    )
  }
  return value
}
