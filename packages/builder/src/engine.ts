import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import Docker from 'dockerode'
import { openDockerArchive } from './docker-archive.js'
import { EngineUnavailableError, ImageNotFoundError } from './errors.js'
import type { ResolvedImage } from './image.js'

/** Where the engine is, for messages: DOCKER_HOST or the default socket. */
export function engineAddress(): string {
  return process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'
}

/** A dockerode client for DOCKER_HOST (or the default socket), checked with a ping. */
export async function connectEngine(docker?: Docker): Promise<Docker> {
  const client = docker ?? new Docker()
  try {
    await client.ping()
  } catch (err) {
    throw new EngineUnavailableError(engineAddress(), err)
  }
  return client
}

async function pull(docker: Docker, name: string): Promise<void> {
  const stream = await docker.pull(name)
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()))
  })
}

/**
 * When an engine image is pulled from its registry: `'never'` (only what the engine has; for tests
 * and air-gapped builds), `'missing'` (pull only when absent, as enclaver does) or `'always'`.
 */
export type PullPolicy = 'never' | 'missing' | 'always'

const PULL_POLICIES: readonly PullPolicy[] = ['never', 'missing', 'always']

/**
 * Reads an image from a Docker engine: `docker save` streamed to a temporary file (uncompressed
 * layers, so it is read in place from then on), removed on close. Pulls as `pull` says.
 */
export async function openEngineImage(
  name: string,
  ref: string,
  {
    docker,
    pull: policy = 'missing',
    tempDir,
  }: { docker?: Docker; pull?: PullPolicy; tempDir?: string } = {},
): Promise<ResolvedImage> {
  if (!PULL_POLICIES.includes(policy))
    throw new TypeError(`pull must be one of ${PULL_POLICIES.join(', ')}, got ${String(policy)}`)
  const client = await connectEngine(docker)
  const image = client.getImage(name)
  let info: Docker.ImageInspectInfo
  try {
    if (policy === 'always') await pull(client, name)
    info = await image.inspect().catch(async (err: { statusCode?: number }) => {
      if (err.statusCode !== 404 || policy !== 'missing') throw err
      await pull(client, name)
      return image.inspect()
    })
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode
    throw new ImageNotFoundError(
      ref,
      policy === 'never' && status === 404
        ? `the engine at ${engineAddress()} has no such image and pulling is off (pull: 'never'): pull or load it first, or allow pulling`
        : `the engine at ${engineAddress()} has no such image and could not pull it: ${(err as Error).message}`,
      { cause: err },
    )
  }
  const dir = await mkdtemp(join(tempDir ?? tmpdir(), 'enclaver-image-'))
  const remove = () => rm(dir, { recursive: true, force: true })
  const file = join(dir, 'image.tar')
  try {
    await pipeline(await image.get(), createWriteStream(file))
  } catch (err) {
    await remove()
    throw new EngineUnavailableError(engineAddress(), err)
  }
  const opened = await openDockerArchive(file, undefined, ref, { onClose: remove })
  const repoDigest = info.RepoDigests?.[0]
  return {
    ...opened,
    id: info.Id,
    name: info.RepoTags?.[0] ?? name,
    ...(repoDigest ? { repoDigest } : {}),
    architecture: info.Architecture ?? opened.architecture,
    os: info.Os ?? opened.os,
  }
}
