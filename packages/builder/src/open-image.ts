import type Docker from 'dockerode'
import { openDockerArchive } from './docker-archive.js'
import { openEngineImage, type PullPolicy } from './engine.js'
import { parseImageReference, type ResolvedImage } from './image.js'
import { openOciLayout } from './oci-layout.js'

export interface OpenImageOptions {
  readonly docker?: Docker
  /** Engine images only: when to pull from the registry. @default 'missing' */
  readonly pull?: PullPolicy
  readonly tempDir?: string
  /** For multi-platform OCI indexes. @default 'amd64' */
  readonly architecture?: string
}

/** Opens any supported image reference; call `close()` on the result when done. */
export async function openImage(reference: string, options: OpenImageOptions = {}): Promise<ResolvedImage> {
  const ref = parseImageReference(reference)
  switch (ref.kind) {
    case 'oci':
      return openOciLayout(
        ref.path,
        ref.tag,
        reference,
        options.architecture ? { architecture: options.architecture } : {},
      )
    case 'docker-archive':
      return openDockerArchive(ref.path, ref.tag, reference)
    case 'engine':
      return openEngineImage(ref.name, reference, options)
  }
}
