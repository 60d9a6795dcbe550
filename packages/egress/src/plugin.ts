import type { Logger } from '@enclave/tunnel'
import { InvalidOptionsError } from './errors.js'
import { type EgressProxyOptions, type EgressTransparentOptions, integer } from './options.js'
import type { EgressPolicyConfig } from './policy.js'
import { startEgressProxy } from './proxy.js'
import { startTransparentEgress } from './transparent.js'

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
  start(ctx: EgressPluginContext): Promise<EgressPluginHandle | undefined>
}

export interface EgressPluginHandle {
  /** The app's proxy variables (http_proxy, https_proxy, no_proxy and upper-case forms). */
  readonly env: Readonly<Record<string, string>>
  /**
   * With `egress.transparent: true`: the port the transparent listener is bound to, which the
   * enclave's `iptables -t nat -A OUTPUT -p tcp ! -d 127.0.0.0/8 -j REDIRECT --to-ports <port>`
   * rule must point at (installing that rule is the caller's job: it needs root and iptables).
   */
  readonly transparentPort?: number
  stop(): Promise<void>
}

/** The manifest's `egress` block. */
export interface EgressManifest {
  readonly proxy_port?: number
  readonly allow?: readonly string[]
  readonly deny?: readonly string[]
  /** Our addition (enclaver #69): also start transparent TCP egress under the same policy. */
  readonly transparent?: boolean
  /** Port of the transparent listener. @default 10001 */
  readonly transparent_port?: number
}

/** Reads `egress` from a parsed enclaver.yaml; undefined when the block is absent. */
export function egressFromManifest(manifest: unknown): EgressManifest | undefined {
  if (manifest === null || typeof manifest !== 'object') return undefined
  const egress = (manifest as { egress?: unknown }).egress
  if (egress === undefined || egress === null) return undefined
  if (typeof egress !== 'object' || Array.isArray(egress))
    throw new InvalidOptionsError('manifest egress must be a mapping')
  const { transparent, transparent_port: port } = egress as EgressManifest
  if (transparent !== undefined && typeof transparent !== 'boolean')
    throw new InvalidOptionsError(
      `manifest egress.transparent must be true or false, got ${String(transparent)}`,
    )
  if (port !== undefined) integer('egress.transparent_port', port, 0, 65535)
  return egress as EgressManifest
}

/**
 * odyn's egress service: starts the in-enclave proxy on egress.proxy_port when egress.allow is
 * non-empty (as enclaver does) and hands the app http_proxy/https_proxy/no_proxy; with
 * `egress.transparent: true` also the transparent listener (egress.transparent_port, default
 * 10001) under the same policy. `overrides` and `transparentOverrides` replace options such as
 * hostAddress or the port (tests, non-default vsock ports).
 */
export function egressPlugin(
  overrides: Partial<EgressProxyOptions> = {},
  transparentOverrides: Partial<Omit<EgressTransparentOptions, 'policy'>> = {},
): EgressPlugin {
  return {
    name: 'egress',
    async start(ctx) {
      const egress = egressFromManifest(ctx.manifest)
      if (!egress?.allow || egress.allow.length === 0) return undefined
      const policy: EgressPolicyConfig = {
        allow: egress.allow,
        ...(egress.deny ? { deny: egress.deny } : {}),
      }
      const dev = ctx.dev === undefined ? {} : { dev: ctx.dev }
      const proxy = await startEgressProxy(
        {
          policy,
          ...(egress.proxy_port === undefined ? {} : { port: egress.proxy_port }),
          ...dev,
          ...overrides,
        },
        { logger: ctx.logger },
      )
      let transparent: Awaited<ReturnType<typeof startTransparentEgress>> | undefined
      if (egress.transparent === true) {
        try {
          transparent = await startTransparentEgress(
            {
              policy,
              ...(egress.transparent_port === undefined ? {} : { port: egress.transparent_port }),
              ...(overrides.hostAddress === undefined ? {} : { hostAddress: overrides.hostAddress }),
              ...dev,
              ...transparentOverrides,
            },
            { logger: ctx.logger },
          )
        } catch (error) {
          await proxy.close()
          throw error
        }
      }
      const stop = async (): Promise<void> => {
        await Promise.all([proxy.close(), transparent?.close()])
      }
      ctx.signal.addEventListener('abort', () => void stop(), { once: true })
      return { env: proxy.env, ...(transparent ? { transparentPort: transparent.port } : {}), stop }
    },
  }
}
