import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import {
  buildEif,
  buildReleaseImage,
  extractImageFile,
  InputMissingError,
  loadManifest,
  type PullPolicy,
  type SourceInfo,
} from '@enclave/builder'
import { createPemSigner } from '@enclave/eif'
import type { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { createProgressBar } from '../progress.js'

/** enclaver's default sleeve (release base) image. */
export const DEFAULT_SLEEVE = 'public.ecr.aws/s2t1d4c6/enclaver-io/enclaver-wrapper-base:latest'

interface BuildFlags {
  file: string
  eifOnly?: boolean
  output?: string
  blobs: string
  /** true: --pull, false: --no-pull, undefined: neither. */
  pull?: boolean
  odyn?: string
  releaseTar?: string
}

/** SOURCE_DATE_EPOCH (reproducible-builds.org) for BuildTime; 0 when unset. */
function sourceDateEpoch(): number {
  const raw = process.env.SOURCE_DATE_EPOCH
  if (raw === undefined || raw === '') return 0
  if (!/^\d+$/.test(raw))
    throw new InputMissingError(
      'a valid SOURCE_DATE_EPOCH',
      raw,
      'set it to whole seconds since 1970, or unset it',
    )
  return Number(raw)
}

/** enclaver's default odyn image; the binary inside it is /usr/local/bin/odyn. */
export const DEFAULT_ODYN = 'public.ecr.aws/s2t1d4c6/enclaver-io/odyn:latest'
const ODYN_IN_IMAGE = '/usr/local/bin/odyn'

/**
 * odyn comes from --odyn, from sources.odyn when that names an existing file (relative to the
 * manifest), or else from sources.odyn (default enclaver's) as an image holding /usr/local/bin/odyn.
 */
async function resolveOdyn(
  flag: string | undefined,
  source: string | undefined,
  manifestFile: string,
  scratch: string,
  signal: AbortSignal,
  pull: PullPolicy,
): Promise<{ path: string; info: SourceInfo }> {
  const fileInfo = (path: string): { path: string; info: SourceInfo } => ({
    path,
    info: { ID: `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`, Name: path },
  })
  if (flag) {
    const path = resolve(flag)
    if (!existsSync(path))
      throw new InputMissingError(
        'the odyn supervisor binary',
        path,
        'pass --odyn FILE (the odyn executable)',
      )
    return fileInfo(path)
  }
  if (source) {
    const candidate = resolve(manifestFile === '-' ? '.' : dirname(manifestFile), source)
    if (existsSync(candidate)) return fileInfo(candidate)
  }
  const extracted = await extractImageFile(source ?? DEFAULT_ODYN, ODYN_IN_IMAGE, join(scratch, 'odyn'), {
    signal,
    pull,
  })
  return { path: extracted.path, info: extracted.image }
}

async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    throw new InputMissingError(what, path, 'fix signature.certificate / signature.key in the manifest', {
      cause: err,
    })
  }
}

/** `enclaver build`: manifest → amended app image → EIF (→ release image), printing enclaver's JSON. */
export function registerBuild(program: Command, ctx: CommandContext): void {
  program
    .command('build')
    .description('build an enclave image (EIF) and its release image from enclaver.yaml')
    .option('-f, --file <path>', 'the manifest; - reads stdin', 'enclaver.yaml')
    .option('--eif-only', 'write only the EIF, no release image')
    .option('-o, --output <file>', 'where to write the EIF (default with --eif-only: application.eif)')
    .option('--blobs <dir>', 'folder with bzImage, cmdline, init, nsm.ko', '/usr/share/nitro_enclaves/blobs')
    .option('--pull', 'pull the app image even when the engine has it')
    .option('--no-pull', 'never pull: use only images the engine already has (offline builds)')
    .option('--odyn <file>', 'the odyn supervisor binary to install at /sbin/odyn')
    .option(
      '--release-tar <file>',
      'write the release image as a docker-archive tarball instead of loading it',
    )
    .action(async (flags: BuildFlags) => {
      const { manifest, text } = await loadManifest(flags.file)
      if (!manifest.ingress?.length)
        ctx.logger.warn('the manifest has no ingress: nothing can reach the enclave')
      if (!manifest.egress?.allow?.length)
        ctx.logger.warn('the manifest allows no egress: the enclave cannot reach out')
      const signer = manifest.signature
        ? createPemSigner({
            privateKey: await readInput(manifest.signature.key, 'the signing key'),
            certificate: await readInput(manifest.signature.certificate, 'the signing certificate'),
          })
        : undefined
      const epoch = sourceDateEpoch()
      const scratch = await mkdtemp(join(tmpdir(), 'enclaver-build-'))
      // Without --eif-only and --output the EIF only lives until it is inside the release image.
      const keepEif = flags.eifOnly || flags.output !== undefined
      const output = keepEif ? resolve(flags.output ?? 'application.eif') : join(scratch, 'application.eif')
      const bar = ctx.interactive ? createProgressBar() : undefined
      try {
        // Engine images are pulled when missing; --pull always pulls the app, --no-pull never pulls.
        const pull: PullPolicy = flags.pull === false ? 'never' : 'missing'
        const odyn = await resolveOdyn(
          flags.odyn,
          manifest.sources.odyn,
          flags.file,
          scratch,
          ctx.signal,
          pull,
        )
        const result = await buildEif({
          image: manifest.sources.app,
          output,
          blobsDir: flags.blobs,
          amend: { manifestText: text, odynPath: odyn.path },
          pull: flags.pull === true ? 'always' : pull,
          ...(signer ? { signer } : {}),
          sourceDateEpoch: epoch,
          signal: ctx.signal,
          // On a terminal the bar shows progress; info records would tear it.
          ...(bar ? { onProgress: bar.update } : { logger: ctx.logger }),
        })
        bar?.stop()
        const sources: Record<string, SourceInfo> = {
          App: result.image,
          Odyn: odyn.info,
        }
        let image: { ID: string; Name: string } | undefined
        if (!flags.eifOnly) {
          const sleeve = manifest.sources.sleeve ?? DEFAULT_SLEEVE
          ctx.logger.info({ sleeve, target: manifest.target }, 'building the release image')
          const release = await buildReleaseImage({
            base: sleeve,
            eifPath: output,
            manifestText: text,
            target: manifest.target,
            sourceDateEpoch: epoch,
            pull,
            ...(flags.releaseTar ? { tarball: resolve(flags.releaseTar) } : { load: true as const }),
          })
          sources.Sleeve = release.base
          image = { ID: release.ID, Name: release.Name }
        }
        const summary = {
          Sources: sources,
          Measurements: result.measurements,
          ...(image ? { Image: image } : {}),
          ...(keepEif ? { EIF: { Path: result.path, Size: result.size } } : {}),
        }
        ctx.out(`${JSON.stringify(summary, null, 2)}\n`)
      } finally {
        bar?.stop()
        await rm(scratch, { recursive: true, force: true })
      }
    })
}
