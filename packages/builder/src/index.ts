/**
 * @enclave/builder: container image → AWS Nitro Enclave image (EIF), natively and reproducibly.
 *
 * ```ts
 * import { buildEif } from '@enclave/builder'
 * const { measurements } = await buildEif({
 *   image: 'oci:./my-image', output: 'app.eif', blobsDir: '/usr/share/nitro_enclaves/blobs',
 * })
 * console.log(measurements.PCR0)
 * ```
 */

export { type AmendInputs, amendConfig, CONFIG_DIR, MANIFEST_PATH, ODYN_PATH } from './amend.js'
export { type Blobs, DEFAULT_BLOBS_DIR, readBlobs } from './blobs.js'
export {
  type BuildEifOptions,
  type BuildEifResult,
  type BuildLogger,
  type BuildProgress,
  buildEif,
  type SourceInfo,
} from './build.js'
export { type CpioEntry, type CpioEntryType, CpioWriter, FIRST_INODE } from './cpio.js'
export { connectEngine, type PullPolicy } from './engine.js'
export {
  AbortedError,
  BuilderError,
  type BuilderErrorCode,
  EngineUnavailableError,
  ImageInvalidError,
  ImageNotFoundError,
  ImageReferenceError,
  InputMissingError,
  LayerInvalidError,
  ManifestInvalidError,
  type ManifestIssue,
  ManifestUnreadableError,
  OutputFailedError,
} from './errors.js'
export { type ExtractedFile, extractImageFile } from './extract.js'
export { GENERATED_MTIME } from './flatten.js'
export {
  type ImageReference,
  type ImageRunConfig,
  type LayerSource,
  parseImageReference,
  type ResolvedImage,
} from './image.js'
export {
  type IngressEntry,
  loadManifest,
  MANIFEST_DEFAULTS,
  type Manifest,
  parseManifest,
} from './manifest.js'
export { type OpenImageOptions, openImage } from './open-image.js'
export { bootstrapRamdisk, commandOf, ROOTFS_DIRS } from './ramdisk.js'
export {
  buildReleaseImage,
  RELEASE_EIF_PATH,
  RELEASE_MANIFEST_PATH,
  type ReleaseImageOptions,
  type ReleaseImageResult,
} from './release.js'
