import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { ImageInvalidError, ImageNotFoundError } from './errors.js'
import type { LayerSource, ResolvedImage } from './image.js'
import { decompressIfNeeded, type ImageConfigFile, runConfigOf } from './oci-layout.js'
import { indexTar, type TarMember } from './tar-index.js'

const MAX_JSON_BYTES = 16 * 1024 * 1024

interface ArchiveManifestEntry {
  Config?: string
  RepoTags?: string[] | null
  Layers?: string[]
}

/**
 * Reads an image from a `docker save` tarball (legacy layout or the OCI-style one Docker 25+ writes;
 * both carry manifest.json). Layers are read in place, by offset: nothing is extracted.
 */
export async function openDockerArchive(
  path: string,
  tag: string | undefined,
  ref: string,
  { onClose }: { onClose?: () => Promise<void> } = {},
): Promise<ResolvedImage> {
  let handle: Awaited<ReturnType<typeof open>>
  try {
    handle = await open(path, 'r')
  } catch (err) {
    throw new ImageNotFoundError(ref, `cannot open ${path}: ${(err as Error).message}`, { cause: err })
  }
  let members: Map<string, TarMember>
  try {
    const { size } = await handle.stat()
    members = await indexTar(handle, size)
  } catch (err) {
    await handle.close()
    await onClose?.()
    throw new ImageInvalidError(ref, (err as Error).message, { cause: err })
  }
  const readMember = async (name: string): Promise<Buffer> => {
    const m = members.get(name)
    if (!m) throw new ImageInvalidError(ref, `the archive has no ${name}`)
    if (m.size > MAX_JSON_BYTES)
      throw new ImageInvalidError(ref, `${name} is ${m.size} bytes, over the JSON limit`)
    const buf = Buffer.alloc(m.size)
    await handle.read(buf, 0, m.size, m.offset)
    return buf
  }
  const parse = <T>(buf: Buffer, name: string): T => {
    try {
      return JSON.parse(buf.toString('utf8')) as T
    } catch (err) {
      throw new ImageInvalidError(ref, `${name} is not JSON: ${(err as Error).message}`, { cause: err })
    }
  }
  try {
    const manifest = parse<ArchiveManifestEntry[]>(await readMember('manifest.json'), 'manifest.json')
    if (!Array.isArray(manifest) || manifest.length === 0)
      throw new ImageInvalidError(ref, 'manifest.json lists no images')
    let entry: ArchiveManifestEntry | undefined
    if (tag !== undefined) {
      entry = manifest.find((e) => e.RepoTags?.some((t) => t === tag || t === `${tag}:latest`))
      if (!entry) throw new ImageNotFoundError(ref, `no image tagged "${tag}" in ${path}`)
    } else if (manifest.length === 1) {
      entry = manifest[0]
    } else {
      throw new ImageNotFoundError(
        ref,
        `${path} holds ${manifest.length} images; name one with docker-archive:${path}:NAME:TAG`,
      )
    }
    if (!entry?.Config || !Array.isArray(entry.Layers))
      throw new ImageInvalidError(ref, 'manifest.json entry has no Config or Layers')
    const configBuf = await readMember(entry.Config)
    const config = parse<ImageConfigFile>(configBuf, entry.Config)
    const id = `sha256:${createHash('sha256').update(configBuf).digest('hex')}`
    const layers: LayerSource[] = entry.Layers.map((name) => {
      const m = members.get(name.replace(/^(\.\/)+/, ''))
      if (!m)
        throw new ImageInvalidError(ref, `manifest.json names layer ${name}, which the archive does not hold`)
      return {
        id: name,
        open: async () => {
          const stream = createReadStream(path, {
            start: m.offset,
            end: m.offset + m.size - 1,
            highWaterMark: 1 << 20,
          })
          // An empty layer: createReadStream with end < start would read the whole file.
          if (m.size === 0) stream.destroy()
          return m.size === 0 ? emptyTar() : decompressIfNeeded(stream, undefined, ref, `layer ${name}`)
        },
      }
    })
    const name = entry.RepoTags?.[0]
    let closed = false
    return {
      reference: ref,
      id,
      ...(name ? { name } : {}),
      architecture: config.architecture ?? 'amd64',
      os: config.os ?? 'linux',
      config: runConfigOf(config),
      configFile: config as Record<string, unknown>,
      layers,
      close: async () => {
        if (closed) return
        closed = true
        await onClose?.()
      },
    }
  } catch (err) {
    await onClose?.()
    throw err
  } finally {
    // Layers are reopened by path; the handle was only for the index and the JSON members.
    await handle.close()
  }
}

function emptyTar(): Readable {
  return Readable.from([Buffer.alloc(1024)])
}
