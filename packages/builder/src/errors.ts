/** Every stable error code of @enclave/builder. The README table lists the same codes. */
export type BuilderErrorCode =
  | 'ENCLAVE_BUILDER_MANIFEST_INVALID'
  | 'ENCLAVE_BUILDER_MANIFEST_UNREADABLE'
  | 'ENCLAVE_BUILDER_IMAGE_REFERENCE'
  | 'ENCLAVE_BUILDER_IMAGE_NOT_FOUND'
  | 'ENCLAVE_BUILDER_IMAGE_INVALID'
  | 'ENCLAVE_BUILDER_LAYER_INVALID'
  | 'ENCLAVE_BUILDER_ENGINE_UNAVAILABLE'
  | 'ENCLAVE_BUILDER_INPUT_MISSING'
  | 'ENCLAVE_BUILDER_OUTPUT_FAILED'
  | 'ENCLAVE_BUILDER_ABORTED'

/** Base class: every error this package throws is a BuilderError with a stable `code`. */
export class BuilderError extends Error {
  readonly code: BuilderErrorCode
  constructor(code: BuilderErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BuilderError'
    this.code = code
  }
}

/** One problem found in a manifest, with its position (1-based line and column). */
export interface ManifestIssue {
  /** Dotted key path, e.g. `ingress[0].listen_port`; empty for the document itself. */
  readonly path: string
  readonly line: number
  readonly column: number
  readonly message: string
}

/** enclaver.yaml is not valid YAML or does not match the schema; `issues` lists every problem found. */
export class ManifestInvalidError extends BuilderError {
  readonly file: string
  readonly issues: readonly ManifestIssue[]
  constructor(file: string, issues: readonly ManifestIssue[]) {
    const lines = issues.map(
      (i) => `${file}:${i.line}:${i.column}: ${i.path ? `${i.path}: ` : ''}${i.message}`,
    )
    super('ENCLAVE_BUILDER_MANIFEST_INVALID', `invalid manifest ${file}:\n  ${lines.join('\n  ')}`)
    this.name = 'ManifestInvalidError'
    this.file = file
    this.issues = issues
  }
}

/** The manifest file could not be read (missing, unreadable). */
export class ManifestUnreadableError extends BuilderError {
  constructor(file: string, cause: unknown) {
    super(
      'ENCLAVE_BUILDER_MANIFEST_UNREADABLE',
      `cannot read manifest ${file}: ${(cause as Error)?.message ?? String(cause)} (pass -f PATH, or - for stdin)`,
      { cause },
    )
    this.name = 'ManifestUnreadableError'
  }
}

/** An image reference has a bad form (e.g. `oci:` with no path). */
export class ImageReferenceError extends BuilderError {
  constructor(reference: string, why: string) {
    super(
      'ENCLAVE_BUILDER_IMAGE_REFERENCE',
      `bad image reference "${reference}": ${why} (use NAME[:TAG], oci:DIR[:TAG] or docker-archive:FILE)`,
    )
    this.name = 'ImageReferenceError'
  }
}

/** The image (or the tag inside a layout/archive) does not exist where the reference points. */
export class ImageNotFoundError extends BuilderError {
  constructor(reference: string, why: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BUILDER_IMAGE_NOT_FOUND', `image "${reference}" not found: ${why}`, options)
    this.name = 'ImageNotFoundError'
  }
}

/** The image's manifest, index or config is malformed, or a blob fails its digest. */
export class ImageInvalidError extends BuilderError {
  constructor(reference: string, why: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BUILDER_IMAGE_INVALID', `image "${reference}" is invalid: ${why}`, options)
    this.name = 'ImageInvalidError'
  }
}

/** A layer tar holds something that cannot go into a ramdisk safely (e.g. a path escaping the root). */
export class LayerInvalidError extends BuilderError {
  constructor(layer: string, why: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BUILDER_LAYER_INVALID', `layer ${layer}: ${why}`, options)
    this.name = 'LayerInvalidError'
  }
}

/** No Docker engine answers at the configured socket / DOCKER_HOST. */
export class EngineUnavailableError extends BuilderError {
  constructor(where: string, cause: unknown) {
    super(
      'ENCLAVE_BUILDER_ENGINE_UNAVAILABLE',
      `no Docker engine answers at ${where}: ${(cause as Error)?.message ?? String(cause)} (start dockerd, set DOCKER_HOST, or use oci:DIR / docker-archive:FILE)`,
      { cause },
    )
    this.name = 'EngineUnavailableError'
  }
}

/** A required input file is missing: a blob (kernel, cmdline, init, nsm.ko), the odyn binary, a key. */
export class InputMissingError extends BuilderError {
  constructor(what: string, path: string, fix: string, options?: { cause?: unknown }) {
    super('ENCLAVE_BUILDER_INPUT_MISSING', `${what} not found at ${path} (${fix})`, options)
    this.name = 'InputMissingError'
  }
}

/** Writing the output (EIF, tarball, image) failed; no partial file is left behind. */
export class OutputFailedError extends BuilderError {
  constructor(path: string, cause: unknown) {
    super(
      'ENCLAVE_BUILDER_OUTPUT_FAILED',
      `cannot write ${path}: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    )
    this.name = 'OutputFailedError'
  }
}

/** The build was cancelled through its AbortSignal. */
export class AbortedError extends BuilderError {
  constructor(cause?: unknown) {
    super('ENCLAVE_BUILDER_ABORTED', 'build aborted', { cause })
    this.name = 'AbortedError'
  }
}
