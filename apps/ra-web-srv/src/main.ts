import { readFileSync } from 'node:fs'
import { createDevNsm, type DevNsm, fromHex, type Nsm, openNsm } from '@enclave/attestation'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { pino } from 'pino'
import { startRaWebServer } from './server.js'

/** Exit codes (README): 0 stopped by a signal or --help, 1 failure (e.g. no NSM), 2 usage error. */
const EXIT = { ok: 0, failure: 1, usage: 2 } as const

function port(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`not a port: ${value}`)
  return n
}

function positive(value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`not a positive number: ${value}`)
  return n
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

function pcr(value: string, previous: Record<number, string> = {}): Record<number, string> {
  const match = /^(\d{1,2})=([0-9a-fA-F]{96})$/.exec(value)
  if (!match || Number(match[1]) > 31 || !fromHex(match[2]!)) {
    throw new InvalidArgumentError(`expected N=HEX (N in 0..31, 96 hex digits), got "${value}"`)
  }
  return { ...previous, [Number(match[1])]: match[2]! }
}

function readMeasurements(path: string): Record<string, string> {
  const json = JSON.parse(readFileSync(path, 'utf8')) as { Measurements?: Record<string, string> } & Record<
    string,
    string
  >
  return json.Measurements ?? json
}

interface Options {
  dev?: boolean
  devDir?: string
  devPcr?: Record<number, string>
  devMeasurements?: string
  host: string
  httpsPort: number
  httpPort?: number
  dnsName: string[]
  watch?: string[]
  ignore?: string[]
  ignoreFile: string
  settleMs: number
  refreshMinutes: number
  maxFiles: number
  allowCallerPublicKey?: boolean
}

async function main(argv: readonly string[]): Promise<number> {
  const logger = pino(
    { name: 'ra-web-srv', level: process.env.RA_WEB_SRV_LOG_LEVEL ?? 'info' },
    pino.destination({ fd: 2, sync: true }),
  )
  const program = new Command('ra-web-srv')
    .description(
      'Attestation server: attested HTTPS, attestation documents, PCRs, signed SHA3-512 hashes of watched files',
    )
    .option('--dev', 'use the dev NSM (software, local CA) instead of /dev/nsm')
    .option('--dev-dir <dir>', 'dev NSM CA folder (default: ~/.config/enclave/dev-nsm)')
    .option('--dev-pcr <N=HEX>', 'dev NSM PCR value (repeatable)', pcr)
    .option(
      '--dev-measurements <file>',
      "dev NSM PCRs from an EIF: nitro-cli's describe-eif JSON (or its Measurements)",
    )
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--https-port <port>', 'attested HTTPS port (0: any free port)', port, 8443)
    .option('--http-port <port>', 'also serve the API over plain HTTP on this port', port)
    .option('--dns-name <name>', 'subjectAltName of the TLS certificate (repeatable)', collect, [])
    .option('--watch <dir>', 'folder whose files are hashed and attested, recursively (repeatable)', collect)
    .option('--ignore <glob>', 'ignore glob, gitignore-like (repeatable)', collect)
    .option('--ignore-file <name>', 'per-folder file of ignore globs', '.fsignore')
    .option('--settle-ms <ms>', 'quiet period before a changed file is hashed', positive, 500)
    .option(
      '--refresh-minutes <min>',
      'renewal period of the TLS certificate and statement document',
      positive,
      30,
    )
    .option('--max-files <n>', 'most files tracked', positive, 100_000)
    .option(
      '--allow-caller-public-key',
      'let /attestation callers bind their own public_key (off: anyone could get a document for any key)',
    )
    .exitOverride()
    .showHelpAfterError()

  let options: Options
  try {
    program.parse(argv as string[], { from: 'node' })
    options = program.opts<Options>()
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage
    throw err
  }

  let nsm: Nsm
  let devRootPem: string | undefined
  try {
    if (options.dev) {
      const dev: DevNsm = await createDevNsm({
        dir: options.devDir,
        pcrs: options.devPcr,
        measurements: options.devMeasurements ? readMeasurements(options.devMeasurements) : undefined,
      })
      devRootPem = dev.rootCertificatePem
      nsm = dev
      logger.warn(
        { dir: dev.dir, moduleId: dev.moduleId },
        'dev mode: documents are signed by a local CA, not by AWS',
      )
    } else {
      nsm = await openNsm()
    }
  } catch (err) {
    logger.error({ code: (err as { code?: string }).code }, (err as Error).message)
    return EXIT.failure
  }

  let server: Awaited<ReturnType<typeof startRaWebServer>>
  try {
    server = await startRaWebServer(
      {
        nsm,
        devRootPem,
        host: options.host,
        httpsPort: options.httpsPort,
        httpPort: options.httpPort,
        dnsNames: options.dnsName.length > 0 ? options.dnsName : ['localhost'],
        refreshMs: options.refreshMinutes * 60_000,
        allowCallerPublicKey: options.allowCallerPublicKey === true,
        files: options.watch
          ? {
              roots: options.watch,
              ignore: options.ignore ?? [],
              ignoreFile: options.ignoreFile,
              settleMs: options.settleMs,
              maxFiles: Math.floor(options.maxFiles),
            }
          : undefined,
      },
      logger,
    )
  } catch (err) {
    logger.error({ err }, (err as Error).message)
    await nsm.close()
    return EXIT.failure
  }
  if (options.allowCallerPublicKey)
    logger.warn('--allow-caller-public-key: /attestation binds any caller key into genuine documents')
  logger.info({ https: server.httpsPort, http: server.httpPort, host: options.host }, 'listening')

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  logger.info({ signal }, 'shutting down')
  await server.close()
  return EXIT.ok
}

main(process.argv).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`ra-web-srv: ${String(err)}\n`)
    process.exitCode = EXIT.failure
  },
)
