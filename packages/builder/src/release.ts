import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, type Readable, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type Docker from 'dockerode'
import { pack } from 'tar-stream'
import { writeAtomically } from './atomic.js'
import { connectEngine, type PullPolicy } from './engine.js'
import { OutputFailedError } from './errors.js'
import { GENERATED_MTIME } from './flatten.js'
import type { LayerSource } from './image.js'
import { openImage } from './open-image.js'

/** Where the sleeve image carries the enclave. */
export const RELEASE_EIF_PATH = '/enclave/application.eif'
export const RELEASE_MANIFEST_PATH = '/enclave/enclaver.yaml'

export interface ReleaseImageOptions {
  /** The sleeve base image reference (any source). */
  readonly base: string
  readonly eifPath: string
  readonly manifestText: string
  /** Tag of the release image (manifest `target`). */
  readonly target: string
  /** Write a docker-archive tarball here (atomically). */
  readonly tarball?: string
  /** Load the image into this engine (or DOCKER_HOST's when `true`). */
  readonly load?: Docker | true
  /** `created` of the new config and history entry, seconds. @default 0 */
  readonly sourceDateEpoch?: number
  readonly docker?: Docker
  /** An engine base image: when to pull it. @default 'missing' */
  readonly pull?: PullPolicy
  readonly tempDir?: string
}

export interface ReleaseImageResult {
  /** Config digest: the image ID Docker shows. */
  readonly ID: string
  readonly Name: string
  readonly tarball?: string
  /** The sleeve base image used. */
  readonly base: { readonly ID: string; readonly Name?: string; readonly RepoDigest?: string }
}

async function measure(open: () => Promise<Readable>): Promise<{ size: number; digest: string }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of await open()) {
    hash.update(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  return { size, digest: hash.digest('hex') }
}

/**
 * The release ("sleeve") image: the base image's layers plus one layer holding the EIF and the
 * manifest, written as a `docker load`-able tarball (layers streamed, never held in memory) and/or
 * loaded into an engine.
 */
export async function buildReleaseImage(options: ReleaseImageOptions): Promise<ReleaseImageResult> {
  const base = await openImage(options.base, {
    ...(options.docker ? { docker: options.docker } : {}),
    ...(options.pull ? { pull: options.pull } : {}),
    ...(options.tempDir ? { tempDir: options.tempDir } : {}),
  })
  const work = await mkdtemp(join(options.tempDir ?? tmpdir(), 'enclaver-release-')).catch(async (err) => {
    await base.close()
    throw err
  })
  try {
    // The extra layer, spooled to disk: its size and digest must be known before the outer tar entry.
    const eifSize = (await stat(options.eifPath)).size
    const manifest = Buffer.from(options.manifestText, 'utf8')
    const layerFile = join(work, 'layer.tar')
    const common = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: new Date(GENERATED_MTIME * 1000) }
    const p = pack()
    const written = pipeline(p as unknown as Readable, createWriteStream(layerFile))
    p.entry({ ...common, name: 'enclave/', type: 'directory', mode: 0o755 })
    p.entry({ ...common, name: RELEASE_MANIFEST_PATH.slice(1), mode: 0o644, size: manifest.length }, manifest)
    await pipeline(
      createReadStream(options.eifPath),
      p.entry({
        ...common,
        name: RELEASE_EIF_PATH.slice(1),
        mode: 0o644,
        size: eifSize,
      }) as unknown as Writable,
    )
    p.finalize()
    await written
    const extra: LayerSource = { id: 'enclave layer', open: async () => createReadStream(layerFile) }

    const layers = [...base.layers, extra]
    const measured: { size: number; digest: string }[] = []
    for (const layer of layers) measured.push(await measure(() => layer.open()))
    const created = new Date((options.sourceDateEpoch ?? 0) * 1000).toISOString()
    const baseConfig = base.configFile
    const history = Array.isArray(baseConfig.history) ? baseConfig.history : []
    const config = Buffer.from(
      JSON.stringify({
        ...baseConfig,
        created,
        rootfs: { type: 'layers', diff_ids: measured.map((m) => `sha256:${m.digest}`) },
        history: [
          ...history,
          { created, created_by: `enclaver build: ${RELEASE_EIF_PATH}, ${RELEASE_MANIFEST_PATH}` },
        ],
      }),
    )
    const configDigest = createHash('sha256').update(config).digest('hex')
    const layerNames = measured.map((m) => `${m.digest}/layer.tar`)
    const manifestJson = Buffer.from(
      JSON.stringify([{ Config: `${configDigest}.json`, RepoTags: [options.target], Layers: layerNames }]),
    )

    const archive = () => {
      const out = pack()
      const run = async () => {
        out.entry({ ...common, name: `${configDigest}.json`, mode: 0o644 }, config)
        for (let i = 0; i < layers.length; i++) {
          const entry = out.entry({ ...common, name: layerNames[i]!, mode: 0o644, size: measured[i]!.size })
          await pipeline(await layers[i]!.open(), entry as unknown as Writable)
        }
        out.entry({ ...common, name: 'manifest.json', mode: 0o644 }, manifestJson)
        out.finalize()
      }
      run().catch((err) => out.destroy(err))
      return out as unknown as Readable
    }

    let tarball: string | undefined
    if (options.tarball) {
      try {
        await writeAtomically(options.tarball, 0o666, (out) => pipeline(archive(), out))
        tarball = options.tarball
      } catch (err) {
        throw new OutputFailedError(options.tarball, err)
      }
    }
    if (options.load) {
      const docker = await connectEngine(options.load === true ? options.docker : options.load)
      const pass = new PassThrough()
      const feeding = pipeline(archive(), pass)
      const response = await docker.loadImage(pass as unknown as NodeJS.ReadableStream, { quiet: true })
      const body = await new Promise<string>((resolve, reject) => {
        const chunks: Buffer[] = []
        response.on('data', (c: Buffer) => chunks.push(c))
        response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
        response.on('error', reject)
      })
      await feeding
      if (/"error"/.test(body))
        throw new OutputFailedError(
          `engine image ${options.target}`,
          new Error(`the engine refused it: ${body.trim()}`),
        )
    }
    return {
      ID: `sha256:${configDigest}`,
      Name: options.target,
      ...(tarball ? { tarball } : {}),
      base: {
        ID: base.id,
        ...(base.name ? { Name: base.name } : {}),
        ...(base.repoDigest ? { RepoDigest: base.repoDigest } : {}),
      },
    }
  } finally {
    await base.close()
    await rm(work, { recursive: true, force: true })
  }
}
