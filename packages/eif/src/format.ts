/**
 * The EIF binary layout (aws-nitro-enclaves-image-format, version 4): a 548-byte header followed by
 * sections, each a 12-byte header and its data, with no padding. All integers are big-endian.
 */

export const EIF_MAGIC = Buffer.from('.eif', 'latin1')
export const EIF_VERSION = 4
export const EIF_HEADER_SIZE = 548
export const EIF_SECTION_HEADER_SIZE = 12
export const EIF_MAX_SECTIONS = 32
/** nitro-cli's SIGNATURE_MAX_SIZE. */
export const EIF_SIGNATURE_MAX_SIZE = 32_768
/** Header flag bit 0: the image is for aarch64 (`EIF_HDR_ARCH_ARM64`). */
export const EIF_FLAG_ARM64 = 1
/** EifBuilder's defaults; the fields are unused by the hypervisor. */
export const EIF_DEFAULT_MEM = 0x4000_0000
export const EIF_DEFAULT_CPUS = 2

/** Byte offsets of the header fields. */
export const HEADER = Object.freeze({
  magic: 0x000,
  version: 0x004,
  flags: 0x006,
  defaultMem: 0x008,
  defaultCpus: 0x010,
  reserved: 0x018,
  numSections: 0x01a,
  offsets: 0x01c,
  sizes: 0x11c,
  unused: 0x21c,
  crc: 0x220,
})

export const SectionType = Object.freeze({
  Invalid: 0,
  Kernel: 1,
  Cmdline: 2,
  Ramdisk: 3,
  Signature: 4,
  Metadata: 5,
})

export type EifSectionTypeName = 'kernel' | 'cmdline' | 'ramdisk' | 'signature' | 'metadata'

const TYPE_NAMES: Record<number, EifSectionTypeName> = {
  1: 'kernel',
  2: 'cmdline',
  3: 'ramdisk',
  4: 'signature',
  5: 'metadata',
}

export function sectionTypeName(type: number): EifSectionTypeName | undefined {
  return TYPE_NAMES[type]
}

export function sectionTypeCode(name: EifSectionTypeName): number {
  switch (name) {
    case 'kernel':
      return SectionType.Kernel
    case 'cmdline':
      return SectionType.Cmdline
    case 'ramdisk':
      return SectionType.Ramdisk
    case 'signature':
      return SectionType.Signature
    case 'metadata':
      return SectionType.Metadata
  }
}

export type EifArch = 'x86_64' | 'aarch64'

/** Where a section is in the file. */
export interface EifSectionInfo {
  index: number
  type: EifSectionTypeName
  /** Absolute offset of the section's 12-byte header; its data follows. */
  offset: number
  /** Data size in bytes, without the 12-byte header. */
  size: number
}

/** The decoded 548-byte header, before any cross-checks against the file. */
export interface RawEifHeader {
  magic: Buffer
  version: number
  flags: number
  defaultMem: bigint
  defaultCpus: bigint
  reserved: number
  numSections: number
  sectionOffsets: bigint[]
  sectionSizes: bigint[]
  unused: number
  crc32: number
}

export function decodeHeader(buf: Buffer): RawEifHeader {
  const sectionOffsets: bigint[] = []
  const sectionSizes: bigint[] = []
  for (let i = 0; i < EIF_MAX_SECTIONS; i++) {
    sectionOffsets.push(buf.readBigUInt64BE(HEADER.offsets + 8 * i))
    sectionSizes.push(buf.readBigUInt64BE(HEADER.sizes + 8 * i))
  }
  return {
    magic: buf.subarray(0, 4),
    version: buf.readUInt16BE(HEADER.version),
    flags: buf.readUInt16BE(HEADER.flags),
    defaultMem: buf.readBigUInt64BE(HEADER.defaultMem),
    defaultCpus: buf.readBigUInt64BE(HEADER.defaultCpus),
    reserved: buf.readUInt16BE(HEADER.reserved),
    numSections: buf.readUInt16BE(HEADER.numSections),
    sectionOffsets,
    sectionSizes,
    unused: buf.readUInt32BE(HEADER.unused),
    crc32: buf.readUInt32BE(HEADER.crc),
  }
}

export interface HeaderFields {
  version: number
  flags: number
  defaultMem: bigint
  defaultCpus: bigint
  /** One entry per section, in file order: absolute offset of its 12-byte header, and its data size. */
  sections: ReadonlyArray<{ offset: number; size: number }>
  crc32: number
}

export function encodeHeader(fields: HeaderFields): Buffer {
  const buf = Buffer.alloc(EIF_HEADER_SIZE)
  EIF_MAGIC.copy(buf, HEADER.magic)
  buf.writeUInt16BE(fields.version, HEADER.version)
  buf.writeUInt16BE(fields.flags, HEADER.flags)
  buf.writeBigUInt64BE(fields.defaultMem, HEADER.defaultMem)
  buf.writeBigUInt64BE(fields.defaultCpus, HEADER.defaultCpus)
  buf.writeUInt16BE(fields.sections.length, HEADER.numSections)
  fields.sections.forEach((s, i) => {
    buf.writeBigUInt64BE(BigInt(s.offset), HEADER.offsets + 8 * i)
    buf.writeBigUInt64BE(BigInt(s.size), HEADER.sizes + 8 * i)
  })
  buf.writeUInt32BE(fields.crc32 >>> 0, HEADER.crc)
  return buf
}

export interface RawSectionHeader {
  type: number
  flags: number
  size: bigint
}

export function decodeSectionHeader(buf: Buffer): RawSectionHeader {
  return { type: buf.readUInt16BE(0), flags: buf.readUInt16BE(2), size: buf.readBigUInt64BE(4) }
}

export function encodeSectionHeader(type: number, size: number): Buffer {
  const buf = Buffer.alloc(EIF_SECTION_HEADER_SIZE)
  buf.writeUInt16BE(type, 0)
  buf.writeBigUInt64BE(BigInt(size), 4)
  return buf
}
