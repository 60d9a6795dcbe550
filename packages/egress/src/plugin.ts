import { InvalidOptionsError } from './errors.js'
import type { Logger } from './logger.js'
import type { EgressProxyOptions } from './options.js'
import type { EgressPolicyConfig } from './policy.js'
import { startEgressProxy } from './proxy.js'

/**
 * The slice of @enclave/supervisor's plug-in interface (SupervisorPlugin) this package fits,
 * restated structurally so the package does not depend on the supervisor.
 */
export interface EgressPluginContext {
  readonly manifest: unknown
  readonly logger: Logger
  readonly signal: AbortSignal
  readonly dev: EgressProxyOptions['dev'] | undefined
}

export interface EgressPlugin {
  readonly name: 'egress'
  start(
    ctx: EgressPluginContext,
  ): Promise<{ env: Readonly<Record<string, string>>; stop(): Promise<void> } | undefined>
}

/** The manifest's `egress` block. */
export interface EgressManifest {
  readonly proxy_port?: number
  readonly allow?: readonly string[]
  readonly deny?: readonly string[]
}

/** Reads `egress` from a parsed enclaver.yaml; undefined when the block is absent. */
export function egressFromManifest(manifest: unknown): EgressManifest | undefined {
  if (manifest === null || typeof manifest !== 'object') return undefined
  const egress = (manifest as { egress?: unknown }).egress
  if (egress === undefined || egress === null) return undefined
  if (typeof egress !== 'object' || Array.isArray(egress))
    throw new InvalidOptionsError('manifest egress must be a mapping')
  return egress as EgressManifest
}

/**
 * odyn's egress service: starts the in-enclave proxy on egress.proxy_port when egress.allow is
 * non-empty (as enclaver does) and hands the app http_proxy/https_proxy/no_proxy. `overrides`
 * replaces options such as hostAddress (tests, non-default vsock ports).
 */
export function egressPlugin(overrides: Partial<EgressProxyOptions> = {}): EgressPlugin {
  return {
    name: 'egress',
    async start(ctx) {
      const egress = egressFromManifest(ctx.manifest)
      if (!egress?.allow || egress.allow.length === 0) return undefined
      const policy: EgressPolicyConfig = {
        allow: egress.allow,
        ...(egress.deny ? { deny: egress.deny } : {}),
      }
      const proxy = await startEgressProxy(
        {
          policy,
          ...(egress.proxy_port === undefined ? {} : { port: egress.proxy_port }),
          ...(ctx.dev === undefined ? {} : { dev: ctx.dev }),
          ...overrides,
        },
        { logger: ctx.logger },
      )
      ctx.signal.addEventListener('abort', () => void proxy.close(), { once: true })
      return { env: proxy.env, stop: () => proxy.close() }
    },
  }
}
