import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  extractImageFile,
  loadManifest,
  type Manifest,
  type PullPolicy,
  RELEASE_EIF_PATH,
  RELEASE_MANIFEST_PATH,
} from '@enclave/builder'
import { startEgressHost } from '@enclave/egress'
import { describeEif } from '@enclave/eif'
import { startIngressHost } from '@enclave/ingress'
import {
  checkMeasurements,
  type HostPlugin,
  InvalidOptionsError,
  type Launcher,
  NitroCliLauncher,
  parseExpectedPcrs,
  runEnclave,
  SimulatorLauncher,
} from '@enclave/supervisor'
import type { Command } from 'commander'
import type { CommandContext } from '../context.js'

interface RunOptions {
  eif: string
  manifest: string
  simulate?: boolean
  cpuCount?: string
  memoryMb?: string
  enclaveCid?: string
  debugMode?: boolean
  expectPcrs?: string
  nitroCli?: string
  odyn?: string
  ingressHost?: string
  /** true: --pull, false: --no-pull, undefined: neither. */
  pull?: boolean
}

const MIN_MEMORY_MB = 64

/**
 * `enclaver run`: starts the EIF (nitro-cli, or --simulate: odyn as a process here with vsock over
 * Unix sockets and the dev NSM reporting the EIF's PCRs), streams its logs to stdout, follows its
 * status and terminates it. Exit code: the app's own; 107 killed by a signal; 108 odyn failed;
 * 109 interrupted (SIGINT/SIGTERM).
 */
export function registerRun(program: Command, ctx: CommandContext): void {
  program
    .command('run')
    .description('run an EIF on this Nitro host (nitro-cli), or --simulate it locally under odyn')
    .argument(
      '[image]',
      'a release image (engine name, docker-archive:PATH or oci:PATH): runs its /enclave/application.eif',
    )
    .argument('[app...]', 'with --simulate: the app command to run under odyn (after --)')
    .option('--eif <file>', 'the EIF to run', RELEASE_EIF_PATH)
    .option('--manifest <file>', 'enclaver.yaml (odyn.yaml next to it is used too)', RELEASE_MANIFEST_PATH)
    .option('--pull', 'always pull the release image (engine images)')
    .option('--no-pull', 'never pull the release image: it must already be in the engine')
    .option('--simulate', 'run on this machine as processes instead of in a Nitro enclave')
    .option('--cpu-count <n>', 'vCPUs (default: manifest defaults.cpu_count, else 2)')
    .option('--memory-mb <n>', 'memory in MiB (default: manifest defaults.memory_mb, else 4096)')
    .option('--enclave-cid <cid>', 'the enclave CID (default: nitro-cli chooses; simulator: 16)')
    .option('-d, --debug-mode', "debug mode: attach the enclave's console (simulator: odyn's stderr)")
    .option('--expect-pcrs <spec>', 'refuse to start unless the EIF matches: PCR0=<hex>,... or a JSON file')
    .option('--nitro-cli <path>', 'the nitro-cli executable', 'nitro-cli')
    .option('--odyn <path>', 'simulator: the odyn entry script (default: the one next to this CLI)')
    .option(
      '--ingress-host <addr>',
      'address of the host ingress listeners (default 0.0.0.0; simulator: 127.0.0.2, since the app holds 127.0.0.1:<port>)',
    )
    .action(async (image: string | undefined, rest: string[], options: RunOptions, command: Command) => {
      const { release, app } = splitOperands(image, rest, command)
      const code = release
        ? await withReleaseImage(release, options, ctx, (files) => run(app, { ...options, ...files }, ctx))
        : await run(app, options, ctx)
      // The exit code is the app's (enclaver-run's contract), so it is set here, once output is flushed.
      process.exit(code)
    })
}

/**
 * Operands before `--` name the release image (at most one); those after it are the app (with
 * --simulate). An image replaces --eif/--manifest, so giving both is a usage error.
 */
function splitOperands(
  image: string | undefined,
  rest: string[],
  command: Command,
): { release: string | undefined; app: string[] } {
  const operands = image === undefined ? [] : [image, ...rest]
  const dash = process.argv.indexOf('--')
  const afterDash = dash < 0 ? 0 : Math.min(process.argv.length - dash - 1, operands.length)
  const before = operands.slice(0, operands.length - afterDash)
  const app = operands.slice(operands.length - afterDash)
  const explicit = ['eif', 'manifest'].filter((name) => command.getOptionValueSource(name) === 'cli')
  if (before.length > 1)
    command.error(
      `error: expected at most one IMAGE before "--", got ${before.length} (${before.join(' ')}); put the app command after "--"`,
      { exitCode: 2, code: 'enclaver.usage' },
    )
  const release = before[0]
  if (release !== undefined && explicit.length > 0)
    command.error(
      `error: give either a release IMAGE or --eif/--manifest, not both (got ${release} and --${explicit.join(', --')}); with --simulate the app command goes after "--"`,
      { exitCode: 2, code: 'enclaver.usage' },
    )
  return { release, app }
}

/**
 * Extracts the release image's EIF and manifest into a private temporary folder, runs `body` on
 * them, and removes the folder afterwards, whatever happens.
 */
async function withReleaseImage(
  reference: string,
  options: RunOptions,
  ctx: CommandContext,
  body: (files: { eif: string; manifest: string }) => Promise<number>,
): Promise<number> {
  const pull: PullPolicy = options.pull === true ? 'always' : options.pull === false ? 'never' : 'missing'
  // mkdtemp creates the folder 0700: only this user can read the extracted EIF.
  const dir = await mkdtemp(join(tmpdir(), 'enclaver-release-'))
  try {
    const eif = await extractImageFile(reference, RELEASE_EIF_PATH, join(dir, 'application.eif'), {
      signal: ctx.signal,
      pull,
    })
    // The image is local now: never pull it a second time for the manifest.
    const manifest = await extractImageFile(reference, RELEASE_MANIFEST_PATH, join(dir, 'enclaver.yaml'), {
      signal: ctx.signal,
      pull: pull === 'always' ? 'missing' : pull,
    })
    ctx.logger.info({ image: eif.image }, 'running the release image')
    return await body({ eif: eif.path, manifest: manifest.path })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function run(app: string[], options: RunOptions, ctx: CommandContext): Promise<number> {
  const { manifest } = await loadManifest(options.manifest)
  const measurements = (await describeEif(options.eif, { signal: ctx.signal })).Measurements as Record<
    string,
    string | undefined
  >
  if (options.expectPcrs) checkMeasurements(measurements, parseExpectedPcrs(options.expectPcrs))
  const cpuCount = integer('--cpu-count', options.cpuCount) ?? manifest.defaults.cpu_count
  const memoryMib = integer('--memory-mb', options.memoryMb) ?? manifest.defaults.memory_mb
  const cid = integer('--enclave-cid', options.enclaveCid)
  if (cpuCount < 1) throw new InvalidOptionsError(`cpu count must be at least 1, got ${cpuCount}`)
  if (memoryMib < MIN_MEMORY_MB)
    throw new InvalidOptionsError(`memory must be at least ${MIN_MEMORY_MB} MiB, got ${memoryMib}`)

  let configDir: string | undefined
  try {
    let launcher: Launcher
    // Where the host halves reach the enclave: the simulator's Unix-socket folder, or real vsock.
    let egressDev: { dir: string; cid: number } | undefined
    if (options.simulate) {
      if (app.length === 0)
        throw new InvalidOptionsError(
          '--simulate needs the app command after "--" (enclaver run --simulate -- node app.js)',
        )
      // odyn reads <config-dir>/enclaver.yaml (and odyn.yaml), as in the image.
      configDir = mkdtempSync(join(tmpdir(), 'enclaver-sim-config-'))
      copyFileSync(options.manifest, join(configDir, 'enclaver.yaml'))
      const odynYaml = join(dirname(resolve(options.manifest)), 'odyn.yaml')
      if (existsSync(odynYaml)) copyFileSync(odynYaml, join(configDir, 'odyn.yaml'))
      // The egress listener starts before odyn, so the vsock folder must exist before launch.
      const vsockDir = join(configDir, 'vsock')
      mkdirSync(vsockDir)
      egressDev = { dir: vsockDir, cid: 3 }
      if (manifest.egress?.transparent)
        // odyn says so too, but its own log shows only with --debug-mode under the simulator.
        ctx.logger.warn(
          { egress: 'transparent' },
          "transparent egress needs a real enclave: under --simulate the app's direct TCP connections are NOT intercepted (this machine's firewall is left alone); only proxy-aware clients (http_proxy/https_proxy) go through egress",
        )
      const pcrs: Record<number, string> = {}
      for (const [name, value] of Object.entries(measurements)) {
        const index = /^PCR(\d+)$/.exec(name)?.[1]
        if (index !== undefined && typeof value === 'string') pcrs[Number(index)] = value
      }
      launcher = new SimulatorLauncher({
        odyn: [process.execPath, options.odyn ?? fileURLToPath(new URL('./odyn.js', import.meta.url))],
        configDir,
        app,
        cid: cid ?? 16,
        pcrs,
        debugMode: options.debugMode,
        vsockDir,
      })
    } else {
      if (app.length > 0) throw new InvalidOptionsError('an app command is only accepted with --simulate')
      launcher = new NitroCliLauncher(
        {
          eifPath: options.eif,
          cpuCount,
          memoryMib,
          cid,
          debugMode: options.debugMode,
          nitroCli: options.nitroCli,
        },
        { logger: ctx.logger },
      )
    }
    const ingressHost = options.ingressHost ?? (options.simulate ? '127.0.0.2' : '0.0.0.0')
    const result = await runEnclave(
      {
        launcher,
        logSink: process.stdout,
        signal: ctx.signal,
        hostPlugins: hostPlugins(manifest, { egressDev, ingressHost }),
      },
      { logger: ctx.logger },
    )
    ctx.logger.info({ status: result.status, exitCode: result.exitCode }, 'enclave finished')
    return result.exitCode
  } finally {
    if (configDir) rmSync(configDir, { recursive: true, force: true })
  }
}

/**
 * The host halves of the manifest's networking, as enclaver-run starts them: the egress listener
 * on vsock 17002 (before the enclave, which dials it while starting) with the manifest's policy,
 * and one TCP listener per ingress entry (host listen_port → vsock enclave CID, same port).
 */
function hostPlugins(
  manifest: Manifest,
  where: { egressDev: { dir: string; cid: number } | undefined; ingressHost: string },
): HostPlugin[] {
  const plugins: HostPlugin[] = []
  const egress = manifest.egress
  if (egress?.allow && egress.allow.length > 0) {
    const policy = { allow: egress.allow, ...(egress.deny ? { deny: egress.deny } : {}) }
    plugins.push({
      name: 'egress',
      phase: 'before-launch',
      async start({ logger }) {
        const host = await startEgressHost(
          { policy, ...(where.egressDev ? { dev: where.egressDev } : {}) },
          { logger },
        )
        return { stop: () => host.close() }
      },
    })
  }
  for (const entry of manifest.ingress ?? []) {
    plugins.push({
      name: `ingress ${entry.listen_port}`,
      phase: 'after-launch',
      async start({ enclave, logger }) {
        const tunnel = await startIngressHost(
          {
            listenPort: entry.listen_port,
            enclaveCid: enclave!.cid,
            listenHost: where.ingressHost,
            ...(entry.proxy_protocol ? { proxyProtocol: true } : {}),
            dev: enclave!.dev ?? undefined,
          },
          { logger },
        )
        logger.info({ address: tunnel.address }, 'ingress listening')
        return { stop: () => tunnel.close({ drainTimeoutMs: 2000 }) }
      },
    })
  }
  return plugins
}

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value))
    throw new InvalidOptionsError(`${flag} must be a non-negative integer, got "${value}"`)
  return Number(value)
}
