import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadManifest } from '@enclave/builder'
import { describeEif } from '@enclave/eif'
import {
  checkMeasurements,
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
    .argument('[app...]', 'with --simulate: the app command to run under odyn (after --)')
    .option('--eif <file>', 'the EIF to run', '/enclave/application.eif')
    .option('--manifest <file>', 'enclaver.yaml (odyn.yaml next to it is used too)', '/enclave/enclaver.yaml')
    .option('--simulate', 'run on this machine as processes instead of in a Nitro enclave')
    .option('--cpu-count <n>', 'vCPUs (default: manifest defaults.cpu_count, else 2)')
    .option('--memory-mb <n>', 'memory in MiB (default: manifest defaults.memory_mb, else 4096)')
    .option('--enclave-cid <cid>', 'the enclave CID (default: nitro-cli chooses; simulator: 16)')
    .option('-d, --debug-mode', "debug mode: attach the enclave's console (simulator: odyn's stderr)")
    .option('--expect-pcrs <spec>', 'refuse to start unless the EIF matches: PCR0=<hex>,... or a JSON file')
    .option('--nitro-cli <path>', 'the nitro-cli executable', 'nitro-cli')
    .option('--odyn <path>', 'simulator: the odyn entry script (default: the one next to this CLI)')
    .action(async (app: string[], options: RunOptions) => {
      const code = await run(app, options, ctx)
      // The exit code is the app's (enclaver-run's contract), so it is set here, once output is flushed.
      process.exit(code)
    })
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

  let launcher: Launcher
  let configDir: string | undefined
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
  try {
    const result = await runEnclave(
      { launcher, logSink: process.stdout, signal: ctx.signal },
      { logger: ctx.logger },
    )
    ctx.logger.info({ status: result.status, exitCode: result.exitCode }, 'enclave finished')
    return result.exitCode
  } finally {
    if (configDir) rmSync(configDir, { recursive: true, force: true })
  }
}

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value))
    throw new InvalidOptionsError(`${flag} must be a non-negative integer, got "${value}"`)
  return Number(value)
}
