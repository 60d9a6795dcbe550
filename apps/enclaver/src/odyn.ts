import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { loadManifest, type Manifest } from '@enclave/builder'
import { egressPlugin } from '@enclave/egress'
import { createEnclaveApiServer } from '@enclave/enclave-api'
import { ingressPlugin } from '@enclave/ingress'
import {
  type CredentialsProvider,
  createEgressConnector,
  createImdsCredentialsProvider,
  createRecipient,
  type RecipientNsm,
  startKmsProxy,
  staticCredentials,
} from '@enclave/kms'
import {
  createSupervisor,
  DEV_NSM_PCRS_ENV,
  EXIT_FATAL,
  exitCodeForStatus,
  loadOdynConfig,
  type OdynConfig,
  type SupervisorPlugin,
} from '@enclave/supervisor'
import { Command, CommanderError } from 'commander'
import { pino } from 'pino'
import { installTransparentRedirect, ownsNetwork } from './transparent-egress.js'

/**
 * odyn: the enclave's entrypoint, `odyn --config-dir /etc/enclaver -- <app...>`.
 * Exit codes: after SIGTERM/SIGINT (or with --exit, after the app) the app's status as
 * enclaver-run maps it (its own code, 107 signaled, 108 fatal); 2 for a usage error.
 */
async function main(argv: readonly string[]): Promise<number> {
  const dashes = argv.indexOf('--', 2)
  const own = dashes === -1 ? argv.slice(2) : argv.slice(2, dashes)
  const app = dashes === -1 ? [] : argv.slice(dashes + 1)
  const program = new Command('odyn')
    .description('Enclave supervisor: status (vsock 17000) and logs (vsock 17001), services, then the app')
    .usage('--config-dir <dir> [options] -- <command...>')
    .requiredOption('--config-dir <dir>', 'folder with enclaver.yaml and the optional odyn.yaml')
    .option('--no-bootstrap', 'skip the init steps (loopback, Nitro heartbeat) even as PID 1')
    .option('--no-console', "do not copy the app's log lines to odyn's stdout")
    .option('--exit', 'exit after the app instead of serving the final status until terminated')
    .option(
      '--iptables <path>',
      'iptables for transparent egress (egress.transparent; real enclave only)',
      'iptables',
    )
    .option(
      '--private-network',
      'this network namespace is private (as in an enclave): install the transparent-egress redirect even in vsock dev mode (tests)',
    )
    .option('-v, --verbose', 'debug logging')
    .exitOverride()
  try {
    program.parse(own as string[], { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
    throw err
  }
  const opts = program.opts<{
    configDir: string
    bootstrap: boolean
    console: boolean
    exit?: boolean
    verbose?: boolean
    iptables: string
    privateNetwork?: boolean
  }>()
  if (app.length === 0) {
    process.stderr.write('odyn: give the app command after "--" (odyn --config-dir DIR -- node app.js)\n')
    return 2
  }
  const logger = pino(
    { name: 'odyn', level: opts.verbose ? 'debug' : 'info' },
    pino.destination({ fd: 2, sync: true }),
  )
  const isInit = process.pid === 1
  const devDir = process.env.ENCLAVE_VSOCK_DEV_DIR
  let dev: { dir: string; cid: number } | false = false
  if (devDir) {
    const rawCid = process.env.ENCLAVE_VSOCK_DEV_CID ?? '16'
    const cid = Number(rawCid)
    // CIDs 0-2 are reserved (any/hypervisor/host); 3 is the parent. An enclave's CID is ≥ 4.
    if (!/^\d+$/.test(rawCid) || !Number.isSafeInteger(cid) || cid < 4 || cid > 0xfffffffe) {
      process.stderr.write(
        `odyn: ENCLAVE_VSOCK_DEV_CID must be an enclave CID (an integer from 4 to 4294967294), got "${rawCid}"\n`,
      )
      return 2
    }
    dev = { dir: devDir, cid }
  }

  // Loading errors are published as fatal{error} once the status server is up.
  let manifest: Manifest | undefined
  let config: OdynConfig | undefined
  let startupError: Error | undefined
  let nsm: unknown
  let control: { address: string; key: Buffer } | undefined
  try {
    const manifestFile = join(opts.configDir, 'enclaver.yaml')
    if (existsSync(manifestFile)) manifest = (await loadManifest(manifestFile)).manifest
    config = await loadOdynConfig(opts.configDir)
    if (config.control) {
      // The key file's bytes are the key (at least 32); relative paths are in the config dir.
      const key = await readFile(resolve(opts.configDir, config.control.keyFile))
      control = { address: `vsock://any:${config.control.port}`, key }
    }
    const pcrs = process.env[DEV_NSM_PCRS_ENV]
    if (pcrs && dev) {
      // Loaded only in the simulator: odyn in an enclave does not carry the dev NSM's code.
      const { createDevNsm } = await import('@enclave/attestation')
      const devNsm = await createDevNsm({ pcrs: JSON.parse(pcrs) as Record<number, string> })
      nsm = devNsm
      const pcr0 = Buffer.from((await devNsm.describePcr(0)).value).toString('hex')
      logger.warn({ PCR0: pcr0 }, 'simulator: using the dev NSM; its attestations are not trustworthy')
    } else if (!dev && manifest && needsNsm(manifest)) {
      const { openNsm } = await import('@enclave/attestation')
      nsm = await openNsm()
    }
  } catch (err) {
    startupError = err as Error
  }

  const odyn = createSupervisor(
    {
      command: app,
      manifest,
      config,
      dev,
      console: opts.console,
      loopback: isInit && opts.bootstrap && !dev,
      heartbeat: isInit && opts.bootstrap && !dev && (config?.heartbeat ?? true) ? {} : false,
      killOrphans: true,
      nsm,
      startupError,
      control,
      plugins: networkPlugins({
        iptables: opts.iptables,
        ownsNetwork: ownsNetwork(dev, opts.privateNetwork),
      }),
    },
    { logger },
  )
  let stopping: Promise<number> | undefined
  const stop = (signal: NodeJS.Signals): Promise<number> => {
    stopping ??= odyn.shutdown(signal).then((final) => exitCodeForStatus(final) ?? EXIT_FATAL)
    return stopping
  }
  const done = new Promise<number>((resolve) => {
    process.once('SIGTERM', () => resolve(stop('SIGTERM')))
    process.once('SIGINT', () => resolve(stop('SIGINT')))
    if (opts.exit) void odyn.finished.then(() => resolve(stop('SIGTERM')))
  })
  await odyn.start()
  return done
}

/**
 * Credentials the KMS proxy signs with: handed over in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
 * (+ AWS_SESSION_TOKEN) when odyn's environment has them (the simulator, or a launcher that
 * passes them), else the instance's from IMDSv2, through egress like every other outbound call.
 */
function kmsCredentials(proxyUrl: string): CredentialsProvider {
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = process.env
  if (accessKeyId && secretAccessKey) {
    const sessionToken = process.env.AWS_SESSION_TOKEN
    return staticCredentials({ accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) })
  }
  return createImdsCredentialsProvider({ proxy: proxyUrl })
}

/** The API, the KMS proxy and attested ingress certificates need the NSM. */
function needsNsm(manifest: Manifest): boolean {
  return (
    manifest.api !== undefined ||
    manifest.kms_proxy !== undefined ||
    (manifest.ingress ?? []).some((entry) => entry.tls?.attested === true)
  )
}

/**
 * The manifest's services, started in enclaver's order before the app: egress (the app gets
 * http_proxy...), the KMS proxy (AWS_KMS_ENDPOINT; it reaches KMS and IMDS through egress),
 * ingress, then the enclave API. Each one does nothing when its manifest block is absent.
 */
function networkPlugins(network: { iptables: string; ownsNetwork: boolean }): SupervisorPlugin[] {
  let proxyUrl: string | undefined
  const egress = egressPlugin()
  return [
    {
      name: 'egress',
      async start(ctx) {
        const manifest = ctx.manifest as Manifest | undefined
        const transparent = manifest?.egress?.transparent === true
        if (transparent && !network.ownsNetwork) {
          // The simulator's app shares the host's network: a REDIRECT rule would capture the host's traffic.
          ctx.logger.warn(
            { egress: 'transparent' },
            "transparent egress needs a real enclave: under the simulator the app's direct TCP connections are NOT intercepted (the host's firewall is left alone); only proxy-aware clients (http_proxy/https_proxy) go through egress",
          )
        }
        const handle = await egress.start(
          transparent && !network.ownsNetwork
            ? { ...ctx, manifest: { ...manifest, egress: { ...manifest?.egress, transparent: false } } }
            : ctx,
        )
        proxyUrl = handle?.env.http_proxy
        if (handle?.transparentPort === undefined) return handle
        let redirect: Awaited<ReturnType<typeof installTransparentRedirect>>
        try {
          redirect = await installTransparentRedirect({
            port: handle.transparentPort,
            iptables: network.iptables,
          })
        } catch (err) {
          await handle.stop()
          throw err
        }
        ctx.logger.info(
          { port: handle.transparentPort, rule: redirect.rule.join(' '), addedRoute: redirect.addedRoute },
          "transparent egress: the app's outbound TCP is redirected to the egress listener",
        )
        return {
          env: handle.env,
          async stop() {
            // The rule goes first, so no new connection lands on a closing listener.
            try {
              await redirect.remove()
            } finally {
              await handle.stop()
            }
          },
        }
      },
    },
    {
      name: 'kms-proxy',
      async start(ctx) {
        const kms = (ctx.manifest as Manifest | undefined)?.kms_proxy
        if (!kms) return undefined
        if (!proxyUrl)
          throw new Error(
            'kms_proxy needs egress: allow 169.254.169.254 and the KMS endpoint in egress.allow',
          )
        if (!ctx.nsm) throw new Error('kms_proxy needs the NSM (an enclave, or the simulator)')
        const proxy = await startKmsProxy(
          {
            port: kms.listen_port,
            ...(kms.endpoints ? { endpoints: kms.endpoints } : {}),
            connect: createEgressConnector(proxyUrl),
          },
          {
            recipient: createRecipient({ nsm: ctx.nsm as RecipientNsm }),
            credentials: kmsCredentials(proxyUrl),
            logger: ctx.logger,
          },
        )
        return { env: { AWS_KMS_ENDPOINT: proxy.url }, stop: () => proxy.close() }
      },
    },
    ingressPlugin(),
    {
      name: 'api',
      async start(ctx) {
        const api = (ctx.manifest as Manifest | undefined)?.api
        if (!api) return undefined
        if (!ctx.nsm) throw new Error('api needs the NSM (an enclave, or the simulator)')
        const server = createEnclaveApiServer(
          { port: api.listen_port },
          { nsm: ctx.nsm as Parameters<typeof createEnclaveApiServer>[1]['nsm'], logger: ctx.logger },
        )
        await server.listen()
        return { stop: () => server.close() }
      },
    },
  ]
}

main(process.argv).then(
  (code) => {
    process.exitCode = code
    // Servers are closed; nothing else should keep the loop alive, but as PID 1 never linger.
    setTimeout(() => process.exit(code), 1000).unref()
  },
  (err: unknown) => {
    process.stderr.write(`odyn: ${(err as Error)?.message ?? String(err)}\n`)
    process.exitCode = EXIT_FATAL
  },
)
