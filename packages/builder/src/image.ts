import type { Readable } from 'node:stream'
import { ImageReferenceError } from './errors.js'

/** The part of an image config that decides how the enclave starts. */
export interface ImageRunConfig {
  readonly Entrypoint?: readonly string[] | null
  readonly Cmd?: readonly string[] | null
  readonly Env?: readonly string[] | null
  readonly WorkingDir?: string
  readonly User?: string
}

/** One layer: opened as many times as needed, each time an uncompressed tar stream. */
export interface LayerSource {
  /** A label for messages (digest or path). */
  readonly id: string
  open(): Promise<Readable>
}

/** An image found through any source, ready to flatten. */
export interface ResolvedImage {
  /** The reference as the user gave it. */
  readonly reference: string
  /** Config digest, `sha256:…` (Docker's image ID). */
  readonly id: string
  /** Tag or name, where the source knows one. */
  readonly name?: string
  /** `name@sha256:…` manifest digest, where known. */
  readonly repoDigest?: string
  readonly architecture: string
  readonly os: string
  readonly config: ImageRunConfig
  /** The whole image config JSON (what release images are derived from). */
  readonly configFile: Readonly<Record<string, unknown>>
  /** Bottom layer first. */
  readonly layers: readonly LayerSource[]
  /** Removes temporary files the source made. Idempotent. */
  close(): Promise<void>
}

export type ImageReference =
  | { readonly kind: 'oci'; readonly path: string; readonly tag?: string; readonly raw: string }
  | { readonly kind: 'docker-archive'; readonly path: string; readonly tag?: string; readonly raw: string }
  | { readonly kind: 'engine'; readonly name: string; readonly raw: string }

/**
 * Parses an image reference: `oci:DIR[:TAG]`, `docker-archive:FILE[:NAME:TAG]`, or anything else as a
 * Docker engine image name. A `:` counts as the tag separator only after the path's last `/`.
 */
export function parseImageReference(raw: string): ImageReference {
  const trimmed = raw.trim()
  if (trimmed === '') throw new ImageReferenceError(raw, 'it is empty')
  for (const kind of ['oci', 'docker-archive'] as const) {
    const prefix = `${kind}:`
    if (!trimmed.startsWith(prefix)) continue
    const rest = trimmed.slice(prefix.length)
    if (rest === '') throw new ImageReferenceError(raw, `no path after "${prefix}"`)
    // docker-archive's selector may itself hold a ':' (name:tag), so split at the first ':' after the
    // last '/'; oci's tag never holds one.
    const slash = rest.lastIndexOf('/')
    const colon = kind === 'oci' ? rest.lastIndexOf(':') : rest.indexOf(':', slash + 1)
    if (colon > slash && colon > 0) {
      const tag = rest.slice(colon + 1)
      if (tag === '') throw new ImageReferenceError(raw, 'empty tag after ":"')
      return { kind, path: rest.slice(0, colon), tag, raw }
    }
    return { kind, path: rest, raw }
  }
  if (/\s/.test(trimmed)) throw new ImageReferenceError(raw, 'image names cannot contain spaces')
  return { kind: 'engine', name: trimmed, raw }
}
