import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough, type Readable, Transform } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { ImageInvalidError, ImageNotFoundError } from './errors.js'
import type { ImageRunConfig, LayerSource, ResolvedImage } from './image.js'

// JSON documents (index, manifest, config) are small; a bigger one is hostile or corrupt.
const MAX_JSON_BYTES = 16 * 1024 * 1024

interface Descriptor {
  mediaType?: string
  digest: string
  size?: number
  annotations?: Record<string, string>
  platform?: { architecture?: string; os?: string; variant?: string }
}

const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
])

/** Options shared by the file-based sources. */
export interface PlatformOptions {
  /** Wanted architecture when a source holds several (OCI image index). @default 'amd64' */
  readonly architecture?: string
}

export function blobPath(root: string, digest: string, ref: string): string {
  const m = /^(sha256|sha512):([a-f0-9]{64}|[a-f0-9]{128})$/.exec(digest)
  if (!m) throw new ImageInvalidError(ref, `bad digest "${digest}"`)
  return join(root, 'blobs', m[1]!, m[2]!)
}

async function readJson<T>(path: string, ref: string, digest?: string): Promise<T> {
  let buf: Buffer
  try {
    const st = await stat(path)
    if (st.size > MAX_JSON_BYTES)
      throw new ImageInvalidError(ref, `${path} is ${st.size} bytes, over the JSON limit`)
    buf = await readFile(path)
  } catch (err) {
    if (err instanceof ImageInvalidError) throw err
    throw new ImageNotFoundError(ref, `cannot read ${path}: ${(err as Error).message}`, { cause: err })
  }
  if (digest) checkDigest(buf, digest, ref, path)
  try {
    return JSON.parse(buf.toString('utf8')) as T
  } catch (err) {
    throw new ImageInvalidError(ref, `${path} is not JSON: ${(err as Error).message}`, { cause: err })
  }
}

function checkDigest(buf: Buffer, digest: string, ref: string, what: string): void {
  const [alg, hex] = digest.split(':') as [string, string]
  const got = createHash(alg).update(buf).digest('hex')
  if (got !== hex)
    throw new ImageInvalidError(ref, `${what} does not match its digest ${digest} (got ${alg}:${got})`)
}

/**
 * A stream that hashes what goes through and fails at the end when the digest differs, so a
 * corrupt or tampered blob never ends up in a ramdisk unnoticed.
 */
export function verifyingStream(digest: string, ref: string, what: string): Transform {
  const [alg, hex] = digest.split(':') as [string, string]
  const hash = createHash(alg)
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk)
      cb(null, chunk)
    },
    flush(cb) {
      const got = hash.digest('hex')
      cb(got === hex ? null : new ImageInvalidError(ref, `${what} does not match its digest ${digest}`))
    },
  })
}

function zstdError(ref: string, what: string): ImageInvalidError {
  return new ImageInvalidError(
    ref,
    `${what} is zstd-compressed, which Node 20 cannot decompress; re-export it with gzip or uncompressed layers`,
  )
}

/** Wraps a (possibly gzip-compressed) tar stream so readers always get plain tar; sniffs the magic. */
export function decompressIfNeeded(
  input: Readable,
  mediaType: string | undefined,
  ref: string,
  what: string,
): Readable {
  if (mediaType?.includes('zstd')) {
    input.destroy()
    throw zstdError(ref, what)
  }
  const out = new PassThrough({ highWaterMark: 1 << 20 })
  let decided = false
  let head = Buffer.alloc(0)
  const decide = (gzip: boolean) => {
    decided = true
    const target = gzip ? createGunzip({ chunkSize: 1 << 20 }) : out
    if (gzip) {
      target.on('error', (err) =>
        out.destroy(new ImageInvalidError(ref, `${what}: bad gzip data: ${err.message}`, { cause: err })),
      )
      target.pipe(out)
    }
    target.write(head)
    input.pipe(target)
  }
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk])
    if (head.length >= 2) {
      input.off('data', onData)
      input.off('end', onEnd)
      input.pause()
      decide(head[0] === 0x1f && head[1] === 0x8b)
    }
  }
  const onEnd = () => {
    if (!decided) {
      out.end(head)
    }
  }
  input.on('data', onData)
  input.on('end', onEnd)
  input.on('error', (err) => out.destroy(err))
  return out
}

/** Reads an image from an OCI image layout folder (`oci-layout` + `index.json` + `blobs/`). */
export async function openOciLayout(
  root: string,
  tag: string | undefined,
  ref: string,
  { architecture = 'amd64' }: PlatformOptions = {},
): Promise<ResolvedImage> {
  const layout = await readJson<{ imageLayoutVersion?: string }>(join(root, 'oci-layout'), ref)
  if (typeof layout.imageLayoutVersion !== 'string')
    throw new ImageInvalidError(ref, 'oci-layout has no imageLayoutVersion')
  const index = await readJson<{ manifests?: Descriptor[] }>(join(root, 'index.json'), ref)
  if (!Array.isArray(index.manifests) || index.manifests.length === 0)
    throw new ImageNotFoundError(ref, 'index.json lists no manifests')

  let candidates = index.manifests
  if (tag !== undefined) {
    candidates = candidates.filter((d) => {
      const a = d.annotations ?? {}
      const name = a['org.opencontainers.image.ref.name']
      const full = a['io.containerd.image.name']
      return name === tag || full === tag || (full?.endsWith(`:${tag}`) ?? false)
    })
    if (candidates.length === 0)
      throw new ImageNotFoundError(ref, `no manifest tagged "${tag}" in ${root}/index.json`)
  } else if (candidates.length > 1 && !candidates.every((d) => d.platform)) {
    throw new ImageNotFoundError(
      ref,
      `index.json lists ${candidates.length} images; name one with oci:${root}:TAG`,
    )
  }

  // Walk nested indexes down to one image manifest for the wanted platform.
  let desc = pickPlatform(candidates, architecture, ref)
  for (let depth = 0; INDEX_TYPES.has(desc.mediaType ?? ''); depth++) {
    if (depth > 4) throw new ImageInvalidError(ref, 'image indexes nest too deeply')
    const nested = await readJson<{ manifests?: Descriptor[] }>(
      blobPath(root, desc.digest, ref),
      ref,
      desc.digest,
    )
    if (!Array.isArray(nested.manifests) || nested.manifests.length === 0)
      throw new ImageInvalidError(ref, `index ${desc.digest} lists no manifests`)
    desc = pickPlatform(nested.manifests, architecture, ref)
  }

  const manifest = await readJson<{ config?: Descriptor; layers?: Descriptor[] }>(
    blobPath(root, desc.digest, ref),
    ref,
    desc.digest,
  )
  if (!manifest.config?.digest || !Array.isArray(manifest.layers))
    throw new ImageInvalidError(ref, `manifest ${desc.digest} has no config or layers`)
  const config = await readJson<ImageConfigFile>(
    blobPath(root, manifest.config.digest, ref),
    ref,
    manifest.config.digest,
  )
  const layers: LayerSource[] = manifest.layers.map((layer) => {
    const path = blobPath(root, layer.digest, ref)
    return {
      id: layer.digest,
      open: async () => {
        if (layer.mediaType?.includes('zstd')) throw zstdError(ref, `layer ${layer.digest}`)
        const file = createReadStream(path, { highWaterMark: 1 << 20 })
        const verify = verifyingStream(layer.digest, ref, `layer ${layer.digest}`)
        file.on('error', (err) =>
          verify.destroy(new ImageNotFoundError(ref, `layer blob ${path}: ${err.message}`, { cause: err })),
        )
        return decompressIfNeeded(file.pipe(verify), layer.mediaType, ref, `layer ${layer.digest}`)
      },
    }
  })
  const name =
    desc.annotations?.['io.containerd.image.name'] ?? desc.annotations?.['org.opencontainers.image.ref.name']
  return {
    reference: ref,
    id: manifest.config.digest,
    ...(name ? { name } : {}),
    architecture: config.architecture ?? architecture,
    os: config.os ?? 'linux',
    config: runConfigOf(config),
    configFile: config as Record<string, unknown>,
    layers,
    close: async () => {},
  }
}

function pickPlatform(list: Descriptor[], architecture: string, ref: string): Descriptor {
  if (list.length === 1) return list[0]!
  const hit = list.find(
    (d) => d.platform?.architecture === architecture && (d.platform.os ?? 'linux') === 'linux',
  )
  if (!hit) throw new ImageNotFoundError(ref, `no linux/${architecture} image among ${list.length} manifests`)
  return hit
}

/** The image config JSON (OCI and Docker share these keys). */
export interface ImageConfigFile {
  architecture?: string
  os?: string
  config?: ImageRunConfig | null
  rootfs?: { type?: string; diff_ids?: string[] }
}

export function runConfigOf(file: ImageConfigFile): ImageRunConfig {
  const c = file.config ?? {}
  const list = (v: unknown, key: string): readonly string[] | null => {
    if (v == null) return null
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
      throw new ImageInvalidError('config', `config.${key} must be a list of strings`)
    return v
  }
  return {
    Entrypoint: list(c.Entrypoint, 'Entrypoint'),
    Cmd: list(c.Cmd, 'Cmd'),
    Env: list(c.Env, 'Env'),
    ...(typeof c.WorkingDir === 'string' ? { WorkingDir: c.WorkingDir } : {}),
    ...(typeof c.User === 'string' ? { User: c.User } : {}),
  }
}
