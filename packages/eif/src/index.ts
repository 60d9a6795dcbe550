/**
 * @enclave/eif: the AWS Nitro Enclave Image File (EIF v4) in TypeScript. A streaming writer that
 * computes the CRC and the PCRs in the same pass and writes atomically, a validating reader,
 * EIF signing (COSE_Sign1 over PCR0) and nitro-cli's `describe-eif` output.
 *
 * @example
 * ```ts
 * import { writeEif, describeEif } from '@enclave/eif'
 *
 * const result = await writeEif('app.eif', {
 *   kernel: { path: 'blobs/bzImage' },
 *   cmdline: 'reboot=k panic=30 pci=off nomodules console=ttyS0',
 *   ramdisks: [{ path: 'bootstrap.cpio' }, { path: 'customer.cpio' }],
 *   metadata: { imageName: 'app', imageVersion: 'latest' },
 * })
 * console.log(result.pcrs.PCR0)
 * console.log(JSON.stringify(await describeEif('app.eif'), null, 2))
 * ```
 */

export type { CoseAlgorithm } from '@enclave/cose'
export { crc32, crc32Combine } from './crc.js'
export {
  type DescribeEifOptions,
  describeEif,
  type EifDescription,
  NITRO_HASH_ALGORITHM,
} from './describe.js'
export {
  EifAbortedError,
  EifBadCertificateError,
  EifBadHeaderError,
  EifBadKeyError,
  EifBadMagicError,
  EifBadMetadataError,
  EifBadSectionCountError,
  EifBadSectionHeaderError,
  EifBadSectionOrderError,
  EifBadSectionTableError,
  EifBadSignatureSectionError,
  EifCrcMismatchError,
  EifError,
  type EifErrorCode,
  type EifErrorLocation,
  type EifErrorOptions,
  EifInvalidOptionsError,
  EifIoError,
  EifSectionOverlapError,
  EifSignerFailedError,
  EifSizeMismatchError,
  EifTrailingDataError,
  EifTruncatedError,
  EifUnsupportedVersionError,
  EifWriterStateError,
} from './errors.js'
export {
  EIF_HEADER_SIZE,
  EIF_MAX_SECTIONS,
  EIF_SECTION_HEADER_SIZE,
  EIF_VERSION,
  type EifArch,
  type EifSectionInfo,
  type EifSectionTypeName,
} from './format.js'
export type { EifMetadata, EifMetadataInput } from './metadata.js'
export type { EifWriterOptions } from './options.js'
export { computePcrs, type EifPcrs, type PcrInput, pcrExtend } from './pcr.js'
export {
  type EifCrcCheck,
  type EifHeaderInfo,
  type EifImage,
  type EifMeasurement,
  type EifOpenOptions,
  type EifReadResult,
  type EifVerification,
  type EifVerifyOptions,
  openEif,
  type ReadEifOptions,
  readEif,
} from './reader.js'
export {
  createPemSigner,
  type EifSignatureCheck,
  type EifSigner,
  type PemSignerOptions,
  type SignatureSection,
  type SigningCertificateInfo,
} from './signing.js'
export {
  createEifWriter,
  type EifSource,
  type EifWriteResult,
  type EifWriter,
  type SignEifOptions,
  signEif,
  type WriteEifInput,
  writeEif,
} from './writer.js'
