import { createAttestedTlsCredentials, type Nsm } from '@enclave/attestation'
import type { Logger } from '@enclave/tunnel'
import { type IngressEnclave, startIngressEnclave } from './enclave.js'
import { InvalidOptionsError } from './errors.js'
import type { IngressEnclaveOptions } from './options.js'

/** One entry of the manifest's `ingress` list. */
export interface IngressManifestEntry {
  readonly listen_port: number
  readonly tls?: {
    readonly cert_file?: string
    readonly key_file?: string
    readonly client_ca_file?: string
    /** Our addition: an attested certificate made in the enclave instead of files. */
    readonly attested?: boolean
    /** subjectAltNames of the attested certificate. @default ['localhost'] */
    readonly dns_names?: readonly string[]
  }
  readonly proxy_protocol?: boolean
}

/**
 * The slice of @enclave/supervisor's plug-in interface (SupervisorPlugin) this package fits,
 * restated structurally so the package does not depend on the supervisor.
 */
export interface IngressPluginContext {
  readonly manifest: unknown
  readonly logger: Logger
  readonly signal: AbortSignal
  readonly dev: IngressEnclaveOptions['dev'] | undefined
  /** The NSM (device or dev NSM); needed for attested certificates. */
  readonly nsm?: unknown
}

export interface IngressPlugin {
  readonly name: 'ingress'
  start(ctx: IngressPluginContext): Promise<{ stop(): Promise<void> } | undefined>
}

/** Reads and checks `ingress` from a parsed enclaver.yaml; [] when absent. */
export function ingressFromManifest(manifest: unknown): IngressManifestEntry[] {
  if (manifest === null || typeof manifest !== 'object') return []
  const ingress = (manifest as { ingress?: unknown }).ingress
  if (ingress === undefined || ingress === null) return []
  if (!Array.isArray(ingress))
    throw new InvalidOptionsError('manifest ingress must be a list of { listen_port, tls? }')
  return ingress.map((entry, i) => {
    const e = entry as Partial<IngressManifestEntry> | null
    if (!e || typeof e.listen_port !== 'number')
      throw new InvalidOptionsError(`manifest ingress[${i}].listen_port must be a port number`)
    if (
      e.tls !== undefined &&
      e.tls?.attested !== true &&
      (typeof e.tls?.cert_file !== 'string' || typeof e.tls?.key_file !== 'string')
    ) {
      throw new InvalidOptionsError(
        `manifest ingress[${i}].tls needs cert_file and key_file (or attested: true)`,
      )
    }
    return e as IngressManifestEntry
  })
}

/**
 * Options for `startIngressEnclave` from one manifest entry: cert_file/key_file honoured, or with
 * `attested: true` a certificate carrying an attestation document from `nsm`.
 */
export function enclaveOptionsFor(entry: IngressManifestEntry, nsm?: unknown): IngressEnclaveOptions {
  const tls = entry.tls
  let source:
    | { certFile: string; keyFile: string }
    | { credentials: () => ReturnType<typeof createAttestedTlsCredentials> }
    | undefined
  if (tls?.attested === true) {
    if (nsm === undefined || nsm === null) {
      throw new InvalidOptionsError(
        `ingress ${entry.listen_port}: tls.attested needs the NSM (run inside an enclave or the simulator)`,
      )
    }
    const dnsNames = tls.dns_names ?? ['localhost']
    source = { credentials: () => createAttestedTlsCredentials({ nsm: nsm as Nsm, dnsNames }) }
  } else if (tls) {
    source = { certFile: tls.cert_file!, keyFile: tls.key_file! }
  }
  return {
    listenPort: entry.listen_port,
    ...(tls && source
      ? { tls: { ...source, ...(tls.client_ca_file ? { clientCaFile: tls.client_ca_file } : {}) } }
      : {}),
    ...(entry.proxy_protocol ? { proxyProtocol: true } : {}),
  }
}

/** odyn's ingress service: one enclave half per manifest ingress entry. */
export function ingressPlugin(overrides: Partial<IngressEnclaveOptions> = {}): IngressPlugin {
  return {
    name: 'ingress',
    async start(ctx) {
      const entries = ingressFromManifest(ctx.manifest)
      if (entries.length === 0) return undefined
      const started: IngressEnclave[] = []
      try {
        for (const entry of entries) {
          started.push(
            await startIngressEnclave(
              {
                ...enclaveOptionsFor(entry, ctx.nsm),
                ...(ctx.dev === undefined ? {} : { dev: ctx.dev }),
                ...overrides,
              },
              { logger: ctx.logger },
            ),
          )
        }
      } catch (error) {
        await Promise.all(started.map((s) => s.close()))
        throw error
      }
      const stop = async (): Promise<void> => {
        await Promise.all(started.map((s) => s.close()))
      }
      ctx.signal.addEventListener('abort', () => void stop(), { once: true })
      return { stop }
    },
  }
}
