import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { writeAtomically } from './atomic.js'
import { ImageNotFoundError, OutputFailedError } from './errors.js'
import { copyEntryData, LayerTree } from './flatten.js'
import { type OpenImageOptions, openImage } from './open-image.js'

export interface ExtractedFile {
  readonly path: string
  readonly size: number
  readonly mode: number
  /** The image it came from. */
  readonly image: { readonly ID: string; readonly Name?: string; readonly RepoDigest?: string }
}

/**
 * Copies one file out of an image (after flattening, following symlinks) to `dest`, atomically:
 * how odyn is taken from its image (`/usr/local/bin/odyn`) without running a container.
 */
export async function extractImageFile(
  reference: string,
  filePath: string,
  dest: string,
  options: OpenImageOptions & { signal?: AbortSignal } = {},
): Promise<ExtractedFile> {
  const image = await openImage(reference, options)
  try {
    const tree = new LayerTree()
    for (let i = 0; i < image.layers.length; i++) await tree.addLayer(i, image.layers[i]!, options.signal)
    const hit = tree.lookup(filePath, reference)
    if (!hit || (hit.node.type !== 'file' && hit.node.type !== 'link'))
      throw new ImageNotFoundError(reference, `it has no regular file ${filePath}`)
    const [layerNo, index] = hit.dataKey.split(':').map(Number) as [number, number]
    try {
      await writeAtomically(dest, hit.node.mode & 0o777, (out) =>
        copyEntryData(
          image.layers[layerNo]!,
          index,
          (body) => pipeline(Readable.from(body), out),
          options.signal,
        ),
      )
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('ENCLAVE_')) throw err
      throw new OutputFailedError(dest, err)
    }
    return {
      path: dest,
      size: hit.node.size,
      mode: hit.node.mode,
      image: {
        ID: image.id,
        ...(image.name ? { Name: image.name } : {}),
        ...(image.repoDigest ? { RepoDigest: image.repoDigest } : {}),
      },
    }
  } finally {
    await image.close()
  }
}
