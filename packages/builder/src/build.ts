import { PassThrough } from 'node:stream'
import { createEifWriter, type EifPcrs, type EifSigner } from '@enclave/eif'
import type Docker from 'dockerode'
import { type AmendInputs, amendConfig, amendmentLayer } from './amend.js'
import { DEFAULT_BLOBS_DIR, readBlobs } from './blobs.js'
import type { PullPolicy } from './engine.js'
import { AbortedError, BuilderError, OutputFailedError } from './errors.js'
import { LayerTree } from './flatten.js'
import type { LayerSource } from './image.js'
import { openImage } from './open-image.js'
import { bootstrapRamdisk, commandOf, writeCustomerRamdisk } from './ramdisk.js'
import { PACKAGE_VERSION } from './version.js'

/** A minimal pino-compatible logger; libraries never make their own. */
export interface BuildLogger {
  info(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

/** Progress in bytes of file data: `total` is known once every layer's headers were read. */
export interface BuildProgress {
  readonly phase: 'resolve' | 'scan' | 'write' | 'done'
  readonly done: number
  readonly total: number
}

export interface BuildEifOptions {
  /** Image reference: NAME[:TAG] (Docker engine), oci:DIR[:TAG], docker-archive:FILE. */
  readonly image: string
  /** Where the EIF goes; written atomically. */
  readonly output: string
  /** @default '/usr/share/nitro_enclaves/blobs' */
  readonly blobsDir?: string
  /** Adds enclaver's layer (manifest + odyn) and entrypoint. */
  readonly amend?: AmendInputs
  /** Engine images: `'never'`, `'missing'` (pull when absent) or `'always'`. @default 'missing' */
  readonly pull?: PullPolicy
  /** Engine client; by default one for DOCKER_HOST. */
  readonly docker?: Docker
  /** Signs the EIF (adds PCR8). */
  readonly signer?: EifSigner
  /** BuildTime in the metadata, seconds since the epoch. @default 0, for reproducible output */
  readonly sourceDateEpoch?: number
  /** Folder for temporary files (the engine's image export). @default os.tmpdir() */
  readonly tempDir?: string
  readonly signal?: AbortSignal
  readonly logger?: BuildLogger
  readonly onProgress?: (progress: BuildProgress) => void
}

export interface SourceInfo {
  readonly ID: string
  readonly Name?: string
  readonly RepoDigest?: string
}

export interface BuildEifResult {
  readonly path: string
  readonly size: number
  readonly measurements: EifPcrs
  readonly image: SourceInfo
  readonly architecture: 'x86_64' | 'aarch64'
}

/**
 * Builds an EIF from an image without nitro-cli, linuxkit or Docker-in-Docker: flattens the layers
 * (reading headers once, then data once), streams the customer ramdisk straight into the EIF while
 * the PCRs are computed, and renames the file into place only when complete.
 */
export async function buildEif(options: BuildEifOptions): Promise<BuildEifResult> {
  const { signal, logger, onProgress } = options
  const checkAbort = () => {
    if (signal?.aborted) throw new AbortedError(signal.reason)
  }
  onProgress?.({ phase: 'resolve', done: 0, total: 0 })
  const image = await openImage(options.image, {
    ...(options.docker ? { docker: options.docker } : {}),
    ...(options.pull ? { pull: options.pull } : {}),
    ...(options.tempDir ? { tempDir: options.tempDir } : {}),
  })
  try {
    checkAbort()
    const arch = image.architecture === 'arm64' || image.architecture === 'aarch64' ? 'aarch64' : 'x86_64'
    const blobs = await readBlobs(options.blobsDir ?? DEFAULT_BLOBS_DIR, arch)
    const layers: LayerSource[] = [...image.layers]
    let config = image.config
    if (options.amend) {
      layers.push(await amendmentLayer(options.amend))
      config = amendConfig(config)
    }
    const command = commandOf(config, options.image)
    logger?.info({ image: image.id, layers: layers.length, arch }, 'reading layers')

    const tree = new LayerTree()
    for (let i = 0; i < layers.length; i++) {
      onProgress?.({ phase: 'scan', done: i, total: layers.length })
      await tree.addLayer(i, layers[i]!, signal)
    }
    let total = 0
    for (const path of tree.paths()) total += tree.get(path)!.size
    logger?.debug({ entries: tree.size, dataBytes: total }, 'layers merged')

    const bootstrap = await bootstrapRamdisk(blobs.init, blobs.nsm)
    const epoch = options.sourceDateEpoch ?? 0
    const writer = await createEifWriter(options.output, {
      arch,
      ...(options.signer ? { signer: options.signer } : {}),
      ...(signal ? { signal } : {}),
      metadata: {
        imageName: image.name ?? options.image,
        imageVersion: image.id,
        buildTime: new Date(epoch * 1000),
        buildTool: '@enclave/builder',
        buildToolVersion: PACKAGE_VERSION,
        ...(blobs.operatingSystem ? { operatingSystem: blobs.operatingSystem } : {}),
        ...(blobs.kernelVersion ? { kernelVersion: blobs.kernelVersion } : {}),
        // Only what identifies the image: engine-specific fields (tag times) would break reproducibility.
        dockerInfo: { Id: image.id, Architecture: image.architecture, Os: image.os, Config: config },
      },
    })
    try {
      await writer.kernel(blobs.kernel)
      await writer.cmdline(blobs.cmdline)
      await writer.ramdisk(bootstrap)
      const pipe = new PassThrough({ highWaterMark: 1 << 20 })
      const producing = writeCustomerRamdisk(
        {
          tree,
          layers,
          command,
          env: config.Env ?? [],
          ...(signal ? { signal } : {}),
          onProgress: (done) => onProgress?.({ phase: 'write', done, total }),
        },
        pipe,
      ).then(
        () => {
          pipe.end()
        },
        (err: unknown) => {
          pipe.destroy(err as Error)
          throw err
        },
      )
      // Both sides must settle: a producer error surfaces first, with its own code.
      const [produced, consumed] = await Promise.allSettled([producing, writer.ramdisk(pipe)])
      if (produced.status === 'rejected') throw produced.reason
      if (consumed.status === 'rejected') throw consumed.reason
      const result = await writer.finish()
      onProgress?.({ phase: 'done', done: total, total })
      logger?.info({ path: result.path, size: result.size, ...result.pcrs }, 'EIF written')
      return {
        path: result.path,
        size: result.size,
        measurements: result.pcrs,
        image: {
          ID: image.id,
          ...(image.name ? { Name: image.name } : {}),
          ...(image.repoDigest ? { RepoDigest: image.repoDigest } : {}),
        },
        architecture: arch,
      }
    } catch (err) {
      await writer.abort()
      if (err instanceof BuilderError || (err as { code?: string }).code?.startsWith('ENCLAVE_')) throw err
      throw new OutputFailedError(options.output, err)
    }
  } finally {
    await image.close()
  }
}
