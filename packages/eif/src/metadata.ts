import { EifBadMetadataError, type EifErrorLocation } from './errors.js'
import { PACKAGE_VERSION } from './version.js'

/** The metadata section as nitro-cli writes it (EifIdentityInfo); not measured, so not trusted. */
export interface EifMetadata {
  ImageName: string
  ImageVersion: string
  BuildMetadata: {
    /** RFC 3339. */
    BuildTime: string
    BuildTool: string
    BuildToolVersion: string
    OperatingSystem: string
    KernelVersion: string
  }
  /** `docker inspect` JSON of the source image, or null. */
  DockerInfo: unknown
  /** User JSON, or null. */
  CustomMetadata: unknown
}

/** What a caller gives the writer; every field has a reproducible default. */
export interface EifMetadataInput {
  /** @default '' */
  imageName?: string
  /** @default '' */
  imageVersion?: string
  /** A Date, or an RFC 3339 string written as is. @default the Unix epoch, for reproducible builds */
  buildTime?: Date | string
  /** @default '@enclave/eif' */
  buildTool?: string
  /** @default this package's version */
  buildToolVersion?: string
  /** @default 'Generic Linux' (eif_build's default) */
  operatingSystem?: string
  /** @default 'Unknown version' (eif_build's default) */
  kernelVersion?: string
  /** @default null */
  dockerInfo?: unknown
  /** Serialized, at most 4096 bytes (nitro-cli's limit). @default null */
  customMetadata?: unknown
}

export const CUSTOM_METADATA_MAX_SIZE = 4096
/** Bound on how much metadata a reader loads into memory. */
export const METADATA_MAX_SIZE = 4 * 1024 * 1024

/** RFC 3339 with microseconds and a +00:00 offset, like chrono's to_rfc3339 in eif_build. */
export function formatBuildTime(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new EifBadMetadataError('metadata.buildTime is an invalid Date')
  const iso = date.toISOString() // 1970-01-01T00:00:00.000Z
  return `${iso.slice(0, 23)}000+00:00`
}

export function buildMetadata(input: EifMetadataInput = {}): EifMetadata {
  for (const key of [
    'imageName',
    'imageVersion',
    'buildTool',
    'buildToolVersion',
    'operatingSystem',
    'kernelVersion',
  ] as const) {
    const value = input[key]
    if (value !== undefined && typeof value !== 'string') {
      throw new EifBadMetadataError(`metadata.${key} must be a string, got ${typeof value}`)
    }
  }
  const bt = input.buildTime
  let buildTime: string
  if (bt === undefined) buildTime = formatBuildTime(new Date(0))
  else if (bt instanceof Date) buildTime = formatBuildTime(bt)
  else if (typeof bt === 'string') buildTime = bt
  else throw new EifBadMetadataError('metadata.buildTime must be a Date or an RFC 3339 string')

  const customMetadata = input.customMetadata ?? null
  const customSize = Buffer.byteLength(jsonOrThrow(customMetadata, 'customMetadata'), 'utf8')
  if (customSize > CUSTOM_METADATA_MAX_SIZE) {
    throw new EifBadMetadataError(
      `metadata.customMetadata is ${customSize} bytes once serialized; nitro-cli allows at most ${CUSTOM_METADATA_MAX_SIZE}`,
    )
  }
  const dockerInfo = input.dockerInfo ?? null
  jsonOrThrow(dockerInfo, 'dockerInfo')
  // Key order matters: it is the order nitro-cli serializes, so identical inputs give identical bytes.
  return {
    ImageName: input.imageName ?? '',
    ImageVersion: input.imageVersion ?? '',
    BuildMetadata: {
      BuildTime: buildTime,
      BuildTool: input.buildTool ?? '@enclave/eif',
      BuildToolVersion: input.buildToolVersion ?? PACKAGE_VERSION,
      OperatingSystem: input.operatingSystem ?? 'Generic Linux',
      KernelVersion: input.kernelVersion ?? 'Unknown version',
    },
    DockerInfo: dockerInfo,
    CustomMetadata: customMetadata,
  }
}

export function encodeMetadata(metadata: EifMetadata): Buffer {
  return Buffer.from(JSON.stringify(metadata), 'utf8')
}

function jsonOrThrow(value: unknown, name: string): string {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (cause) {
    throw new EifBadMetadataError(`metadata.${name} cannot be serialized as JSON`, { cause })
  }
  if (text === undefined) throw new EifBadMetadataError(`metadata.${name} is not JSON-serializable`)
  return text
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Parses and checks a metadata section's bytes. */
export function parseMetadata(bytes: Uint8Array, where: EifErrorLocation = {}): EifMetadata {
  let value: unknown
  try {
    value = JSON.parse(utf8.decode(bytes))
  } catch (cause) {
    throw new EifBadMetadataError('the metadata section is not valid UTF-8 JSON', { ...where, cause })
  }
  if (!isObject(value)) throw new EifBadMetadataError('the metadata section is not a JSON object', where)
  const fail = (what: string) => new EifBadMetadataError(`the metadata section ${what}`, where)
  if (typeof value.ImageName !== 'string') throw fail('has no string ImageName')
  if (typeof value.ImageVersion !== 'string') throw fail('has no string ImageVersion')
  const bm = value.BuildMetadata
  if (!isObject(bm)) throw fail('has no BuildMetadata object')
  for (const key of ['BuildTime', 'BuildTool', 'BuildToolVersion', 'OperatingSystem', 'KernelVersion']) {
    if (typeof bm[key] !== 'string') throw fail(`has no string BuildMetadata.${key}`)
  }
  return {
    ImageName: value.ImageName,
    ImageVersion: value.ImageVersion,
    BuildMetadata: {
      BuildTime: bm.BuildTime as string,
      BuildTool: bm.BuildTool as string,
      BuildToolVersion: bm.BuildToolVersion as string,
      OperatingSystem: bm.OperatingSystem as string,
      KernelVersion: bm.KernelVersion as string,
    },
    DockerInfo: value.DockerInfo ?? null,
    CustomMetadata: value.CustomMetadata ?? null,
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
