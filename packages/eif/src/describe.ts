import { type EifOpenOptions, openEif } from './reader.js'
import { certificateInfo, type SigningCertificateInfo } from './signing.js'

/** nitro-cli prints the Debug form of the sha2 hasher type here. */
export const NITRO_HASH_ALGORITHM = 'Sha384 { ... }'

/** `nitro-cli describe-eif` output, field for field (names and order). */
export interface EifDescription {
  EifVersion: number
  Measurements: {
    HashAlgorithm: string
    PCR0: string
    PCR1: string
    PCR2: string
    PCR8?: string
  }
  IsSigned: boolean
  SigningCertificate?: SigningCertificateInfo
  CheckCRC: boolean
  SignatureCheck?: boolean
  ImageName?: string
  ImageVersion?: string
  Metadata?: {
    BuildTime: string
    BuildTool: string
    BuildToolVersion: string
    OperatingSystem: string
    KernelVersion: string
    DockerInfo: unknown
    /** CustomMetadata's keys are flattened in here, as serde's `flatten` does in nitro-cli. */
    [custom: string]: unknown
  }
}

export interface DescribeEifOptions extends EifOpenOptions {
  /** When the signing certificate's validity is checked. @default new Date() */
  now?: Date
}

/**
 * Describes an EIF the way `nitro-cli describe-eif` does. A CRC or signature mismatch is reported
 * in CheckCRC / SignatureCheck; a structurally broken file throws a typed EifError.
 */
export async function describeEif(
  source: string | Uint8Array,
  options: DescribeEifOptions = {},
): Promise<EifDescription> {
  const image = await openEif(source, options)
  try {
    const { pcrs, crc, signatureCheck } = await image.verify(options)
    const measurements: EifDescription['Measurements'] = {
      HashAlgorithm: NITRO_HASH_ALGORITHM,
      PCR0: pcrs.PCR0,
      PCR1: pcrs.PCR1,
      PCR2: pcrs.PCR2,
    }
    if (pcrs.PCR8 !== undefined) measurements.PCR8 = pcrs.PCR8
    // Insertion order is output order: keep nitro-cli's.
    const description: EifDescription = {
      EifVersion: image.header.version,
      Measurements: measurements,
      IsSigned: signatureCheck !== undefined,
      ...(signatureCheck === undefined
        ? {}
        : { SigningCertificate: certificateInfo(signatureCheck.certificate) }),
      CheckCRC: crc.ok,
      ...(signatureCheck === undefined ? {} : { SignatureCheck: signatureCheck.ok }),
    }
    const metadata = image.metadata
    if (metadata !== undefined) {
      description.ImageName = metadata.ImageName
      description.ImageVersion = metadata.ImageVersion
      const bm = metadata.BuildMetadata
      const out: NonNullable<EifDescription['Metadata']> = {
        BuildTime: bm.BuildTime,
        BuildTool: bm.BuildTool,
        BuildToolVersion: bm.BuildToolVersion,
        OperatingSystem: bm.OperatingSystem,
        KernelVersion: bm.KernelVersion,
        DockerInfo: metadata.DockerInfo,
      }
      const custom = metadata.CustomMetadata
      if (typeof custom === 'object' && custom !== null && !Array.isArray(custom)) {
        // defineProperty, not assignment: a "__proto__" key from the file must stay plain data.
        for (const [key, value] of Object.entries(custom)) {
          Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
        }
      } else if (custom !== null && custom !== undefined) {
        out.CustomMetadata = custom
      }
      description.Metadata = out
    }
    return description
  } finally {
    await image.close()
  }
}
