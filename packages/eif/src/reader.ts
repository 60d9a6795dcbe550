import { type FileHandle, open } from 'node:fs/promises'
import { crc32 } from './crc.js'
import {
  EifAbortedError,
  EifBadHeaderError,
  EifBadMagicError,
  EifBadMetadataError,
  EifBadSectionCountError,
  EifBadSectionHeaderError,
  EifBadSectionOrderError,
  EifBadSectionTableError,
  EifBadSignatureSectionError,
  EifCrcMismatchError,
  EifIoError,
  EifSectionOverlapError,
  EifTrailingDataError,
  EifTruncatedError,
  EifUnsupportedVersionError,
} from './errors.js'
import {
  decodeHeader,
  decodeSectionHeader,
  EIF_FLAG_ARM64,
  EIF_HEADER_SIZE,
  EIF_MAGIC,
  EIF_MAX_SECTIONS,
  EIF_SECTION_HEADER_SIZE,
  EIF_SIGNATURE_MAX_SIZE,
  type EifArch,
  type EifSectionInfo,
  type EifSectionTypeName,
  HEADER,
  sectionTypeName,
} from './format.js'
import { type EifMetadata, METADATA_MAX_SIZE, parseMetadata } from './metadata.js'
import { type EifPcrs, PcrAccumulator } from './pcr.js'
import {
  checkSignature,
  decodeSignatureSection,
  type EifSignatureCheck,
  parseCertificate,
  type SignatureSection,
} from './signing.js'

/** Versions this reader accepts: 2 (no signature), 3 (optional signature), 4 (mandatory metadata). */
export const SUPPORTED_VERSIONS: readonly number[] = Object.freeze([2, 3, 4])

const READ_CHUNK = 1024 * 1024

export interface EifHeaderInfo {
  version: number
  arch: EifArch
  flags: number
  defaultMemory: bigint
  defaultCpus: bigint
  sectionCount: number
  /** The CRC-32 stored in the header. */
  crc32: number
}

export interface EifCrcCheck {
  stored: number
  computed: number
  ok: boolean
}

export interface EifMeasurement {
  pcrs: EifPcrs
  crc: EifCrcCheck
}

export interface EifOpenOptions {
  signal?: AbortSignal
}

/** A structurally validated EIF. Section data is only read by measure(), verify() and sectionData(). */
export interface EifImage {
  readonly fileSize: number
  readonly header: EifHeaderInfo
  readonly sections: readonly EifSectionInfo[]
  /** Parsed metadata section (absent in version 2 and 3 images). */
  readonly metadata: EifMetadata | undefined
  /** Parsed signature section, not yet verified. */
  readonly signature: SignatureSection | undefined
  /** Streams one section's data in chunks of at most 1 MiB. */
  sectionData(index: number, options?: EifOpenOptions): AsyncIterable<Buffer>
  /** One pass over the file: PCRs and the CRC check. */
  measure(options?: EifOpenOptions): Promise<EifMeasurement>
  /** measure() plus the signature check against the computed PCR0 at `now`. */
  verify(options?: EifVerifyOptions): Promise<EifVerification>
  close(): Promise<void>
}

export interface EifVerifyOptions extends EifOpenOptions {
  /** The time the certificate's validity is checked at. @default new Date() */
  now?: Date
}

export interface EifVerification extends EifMeasurement {
  /** Present when the image is signed. */
  signatureCheck: EifSignatureCheck | undefined
}

interface ByteSource {
  size: number
  /** Exactly `length` bytes or a typed error. Without `into` the result is the caller's own copy. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>
  close(): Promise<void>
}

async function fileSource(path: string): Promise<ByteSource> {
  let fh: FileHandle
  let size: number
  try {
    fh = await open(path, 'r')
    size = (await fh.stat()).size
  } catch (cause) {
    throw new EifIoError(`cannot open ${path}: ${(cause as Error).message}`, { cause })
  }
  return {
    size,
    async read(offset, length, into) {
      const buf = into ?? Buffer.alloc(length)
      let done = 0
      try {
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, offset + done)
          if (bytesRead === 0) break
          done += bytesRead
        }
      } catch (cause) {
        throw new EifIoError(`reading ${path} at ${offset} failed: ${(cause as Error).message}`, { cause })
      }
      if (done < length) {
        throw new EifTruncatedError(`${path} shrank while being read (ends at ${offset + done})`, {
          offset: offset + done,
        })
      }
      return buf.subarray(0, length)
    },
    close: () => fh.close().catch(() => {}),
  }
}

function bufferSource(bytes: Uint8Array): ByteSource {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
  return {
    size: buf.length,
    async read(offset, length, into) {
      const view = buf.subarray(offset, offset + length)
      // With a scratch buffer the caller only looks at the bytes; without one it keeps them.
      return into === undefined ? Buffer.from(view) : view
    },
    close: async () => {},
  }
}

const TYPE_ARTICLE: Record<EifSectionTypeName, string> = {
  kernel: 'a kernel',
  cmdline: 'a cmdline',
  ramdisk: 'a ramdisk',
  signature: 'a signature',
  metadata: 'a metadata',
}

/**
 * Opens an EIF (a path, or its bytes) and validates its structure: header fields, the section
 * table against the file size, every section header, the section order, and the metadata and
 * signature sections. Throws a typed EifError naming the first problem and where it is.
 */
export async function openEif(source: string | Uint8Array, options: EifOpenOptions = {}): Promise<EifImage> {
  const src = typeof source === 'string' ? await fileSource(source) : bufferSource(source)
  try {
    return await validate(src, options)
  } catch (err) {
    await src.close()
    throw err
  }
}

async function validate(src: ByteSource, options: EifOpenOptions): Promise<EifImage> {
  const fileSize = src.size
  if (fileSize < EIF_HEADER_SIZE) {
    if (fileSize >= 4 && !(await src.read(0, 4)).equals(EIF_MAGIC)) {
      throw new EifBadMagicError('not an EIF: the file does not start with ".eif"', { offset: 0 })
    }
    throw new EifTruncatedError(`the file is ${fileSize} bytes; an EIF header alone is ${EIF_HEADER_SIZE}`, {
      offset: fileSize,
    })
  }
  const headerBytes = Buffer.from(await src.read(0, EIF_HEADER_SIZE))
  const raw = decodeHeader(headerBytes)
  if (!raw.magic.equals(EIF_MAGIC)) {
    throw new EifBadMagicError(
      `not an EIF: the file starts with 0x${raw.magic.toString('hex')}, not ".eif" (0x2e656966)`,
      { offset: 0 },
    )
  }
  if (!SUPPORTED_VERSIONS.includes(raw.version)) {
    throw new EifUnsupportedVersionError(
      `EIF version ${raw.version} is not supported; this reader handles versions ${SUPPORTED_VERSIONS.join(', ')}`,
      { offset: HEADER.version },
    )
  }
  if ((raw.flags & ~EIF_FLAG_ARM64) !== 0) {
    throw new EifBadHeaderError(
      `header flags 0x${raw.flags.toString(16)} set reserved bits; only bit 0 (aarch64) is defined`,
      { offset: HEADER.flags },
    )
  }
  if (raw.reserved !== 0) {
    throw new EifBadHeaderError(`the reserved header field is ${raw.reserved}, not 0`, {
      offset: HEADER.reserved,
    })
  }
  if (raw.unused !== 0) {
    throw new EifBadHeaderError(`the unused header field is ${raw.unused}, not 0`, { offset: HEADER.unused })
  }
  const minSections = raw.version >= 4 ? 4 : 3
  if (raw.numSections < minSections || raw.numSections > EIF_MAX_SECTIONS) {
    throw new EifBadSectionCountError(
      `the header declares ${raw.numSections} sections; a version ${raw.version} EIF has ${minSections} to ${EIF_MAX_SECTIONS}`,
      { offset: HEADER.numSections },
    )
  }
  for (let i = raw.numSections; i < EIF_MAX_SECTIONS; i++) {
    if (raw.sectionOffsets[i] !== 0n || raw.sectionSizes[i] !== 0n) {
      throw new EifBadSectionTableError(
        `section table entry ${i} is set but the header declares only ${raw.numSections} sections`,
        { offset: HEADER.offsets + 8 * i, sectionIndex: i },
      )
    }
  }
  const table: Array<{ offset: number; size: number }> = []
  let expected = EIF_HEADER_SIZE
  for (let i = 0; i < raw.numSections; i++) {
    const off = raw.sectionOffsets[i]!
    const sz = raw.sectionSizes[i]!
    const where = { offset: HEADER.offsets + 8 * i, sectionIndex: i }
    if (off > BigInt(Number.MAX_SAFE_INTEGER) || sz > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new EifBadSectionTableError(
        `section ${i}: offset ${off} or size ${sz} is beyond any real file`,
        where,
      )
    }
    const offset = Number(off)
    const size = Number(sz)
    if (offset < expected) {
      throw new EifSectionOverlapError(
        i === 0
          ? `section 0 starts at ${offset}, inside the ${EIF_HEADER_SIZE}-byte header`
          : `section ${i} starts at ${offset} but section ${i - 1} ends at ${expected}: the sections overlap`,
        where,
      )
    }
    if (offset > expected) {
      throw new EifBadSectionTableError(
        `section ${i} starts at ${offset} but ${i === 0 ? 'the header' : `section ${i - 1}`} ends at ${expected}: EIF sections are contiguous`,
        where,
      )
    }
    const end = offset + EIF_SECTION_HEADER_SIZE + size
    if (end > fileSize) {
      throw new EifTruncatedError(
        `section ${i} (${size} bytes of data at ${offset + EIF_SECTION_HEADER_SIZE}) ends at ${end} but the file is ${fileSize} bytes`,
        { offset: fileSize, sectionIndex: i },
      )
    }
    table.push({ offset, size })
    expected = end
  }
  if (expected < fileSize) {
    throw new EifTrailingDataError(
      `${fileSize - expected} bytes follow the last section (which ends at ${expected})`,
      { offset: expected },
    )
  }

  const sections: EifSectionInfo[] = []
  const sectionHeaders: Buffer[] = []
  for (let i = 0; i < table.length; i++) {
    throwIfAborted(options.signal)
    const { offset, size } = table[i]!
    const bytes = Buffer.from(await src.read(offset, EIF_SECTION_HEADER_SIZE))
    const sh = decodeSectionHeader(bytes)
    const type = sectionTypeName(sh.type)
    const where = { offset, sectionIndex: i }
    if (type === undefined) {
      throw new EifBadSectionHeaderError(`section ${i} has type ${sh.type}; valid types are 1 to 5`, where)
    }
    if (sh.flags !== 0) {
      throw new EifBadSectionHeaderError(
        `section ${i} (${type}) has flags 0x${sh.flags.toString(16)}, not 0`,
        {
          offset: offset + 2,
          sectionIndex: i,
        },
      )
    }
    if (sh.size !== BigInt(size)) {
      throw new EifBadSectionHeaderError(
        `section ${i} (${type}) header says ${sh.size} bytes but the EIF header's table says ${size}`,
        { offset: offset + 4, sectionIndex: i },
      )
    }
    sections.push({ index: i, type, offset, size })
    sectionHeaders.push(bytes)
  }
  checkOrder(sections, raw.version)

  let metadata: EifMetadata | undefined
  let signature: SignatureSection | undefined
  let certificateDer: Buffer | undefined
  for (const s of sections) {
    const where = { offset: s.offset + EIF_SECTION_HEADER_SIZE, sectionIndex: s.index }
    if (s.type === 'metadata') {
      if (s.size > METADATA_MAX_SIZE) {
        throw new EifBadMetadataError(
          `the metadata section is ${s.size} bytes; the limit is ${METADATA_MAX_SIZE}`,
          where,
        )
      }
      metadata = parseMetadata(await src.read(where.offset, s.size), where)
    } else if (s.type === 'signature') {
      if (s.size > EIF_SIGNATURE_MAX_SIZE) {
        throw new EifBadSignatureSectionError(
          `the signature section is ${s.size} bytes; nitro-cli allows at most ${EIF_SIGNATURE_MAX_SIZE}`,
          where,
        )
      }
      signature = decodeSignatureSection(await src.read(where.offset, s.size), where)
      certificateDer = parseCertificate(signature.certificate, where).raw
    }
  }

  const header: EifHeaderInfo = {
    version: raw.version,
    arch: (raw.flags & EIF_FLAG_ARM64) !== 0 ? 'aarch64' : 'x86_64',
    flags: raw.flags,
    defaultMemory: raw.defaultMem,
    defaultCpus: raw.defaultCpus,
    sectionCount: raw.numSections,
    crc32: raw.crc32,
  }

  async function* sectionData(index: number, opts: EifOpenOptions = {}): AsyncIterable<Buffer> {
    const s = sections[index]
    if (s === undefined)
      throw new RangeError(`section index ${index} is out of range 0..${sections.length - 1}`)
    const start = s.offset + EIF_SECTION_HEADER_SIZE
    for (let done = 0; done < s.size; ) {
      throwIfAborted(opts.signal)
      const n = Math.min(READ_CHUNK, s.size - done)
      yield await src.read(start + done, n)
      done += n
    }
  }

  async function measure(opts: EifOpenOptions = {}): Promise<EifMeasurement> {
    const acc = new PcrAccumulator()
    let crc = crc32(headerBytes.subarray(0, HEADER.crc))
    const scratch = Buffer.allocUnsafe(READ_CHUNK)
    for (const s of sections) {
      crc = crc32(sectionHeaders[s.index]!, crc)
      acc.begin(s.type)
      const start = s.offset + EIF_SECTION_HEADER_SIZE
      for (let done = 0; done < s.size; ) {
        throwIfAborted(opts.signal)
        const n = Math.min(READ_CHUNK, s.size - done)
        const chunk = await src.read(start + done, n, scratch)
        crc = crc32(chunk, crc)
        acc.update(chunk)
        done += n
      }
    }
    const { pcrs } = acc.digest(certificateDer)
    return { pcrs, crc: { stored: raw.crc32, computed: crc, ok: crc === raw.crc32 } }
  }

  return {
    fileSize,
    header,
    sections,
    metadata,
    signature,
    sectionData,
    measure,
    async verify(opts: EifVerifyOptions = {}) {
      const measurement = await measure(opts)
      const signatureCheck =
        signature === undefined
          ? undefined
          : checkSignature(signature, Buffer.from(measurement.pcrs.PCR0, 'hex'), opts.now ?? new Date(), {
              sectionIndex: sections.length - 1,
            })
      return { ...measurement, signatureCheck }
    },
    close: () => src.close(),
  }
}

function checkOrder(sections: readonly EifSectionInfo[], version: number): void {
  const order =
    version >= 4 ? 'kernel, cmdline, metadata, ramdisk…, signature' : 'kernel, cmdline, ramdisk…[, signature]'
  const fail = (i: number, why: string) =>
    new EifBadSectionOrderError(`section ${i} is ${why} (EIF v${version} order: ${order})`, {
      offset: sections[i]?.offset,
      sectionIndex: i,
    })
  let i = 0
  const expect = (type: EifSectionTypeName) => {
    const s = sections[i]
    if (s === undefined) throw fail(i, `missing; expected ${TYPE_ARTICLE[type]} section`)
    if (s.type !== type)
      throw fail(i, `${TYPE_ARTICLE[s.type]} section where ${TYPE_ARTICLE[type]} section belongs`)
    i++
  }
  expect('kernel')
  expect('cmdline')
  if (version >= 4) expect('metadata')
  expect('ramdisk')
  while (sections[i]?.type === 'ramdisk') i++
  if (i < sections.length && sections[i]!.type === 'signature' && version >= 3) i++
  if (i < sections.length) {
    const s = sections[i]!
    throw fail(
      i,
      s.type === 'signature' && version < 3
        ? 'a signature section, which EIF versions below 3 do not have'
        : s.type === 'signature'
          ? 'a second signature section'
          : `${TYPE_ARTICLE[s.type]} section after the ramdisks${sections.some((x, j) => j < i && x.type === 'signature') ? ' and signature' : ''}`,
    )
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EifAbortedError(undefined, { cause: signal.reason })
}

export interface ReadEifOptions extends EifVerifyOptions {
  /** Throw EifCrcMismatchError when the CRC does not match. @default true */
  checkCrc?: boolean
}

export interface EifReadResult extends EifVerification {
  fileSize: number
  header: EifHeaderInfo
  sections: readonly EifSectionInfo[]
  metadata: EifMetadata | undefined
}

/** Opens, validates and measures an EIF in one call, then closes it. */
export async function readEif(
  source: string | Uint8Array,
  options: ReadEifOptions = {},
): Promise<EifReadResult> {
  const image = await openEif(source, options)
  try {
    const verification = await image.verify(options)
    if ((options.checkCrc ?? true) && !verification.crc.ok) {
      throw new EifCrcMismatchError(verification.crc.stored, verification.crc.computed, {
        offset: HEADER.crc,
      })
    }
    return {
      fileSize: image.fileSize,
      header: image.header,
      sections: image.sections,
      metadata: image.metadata,
      ...verification,
    }
  } finally {
    await image.close()
  }
}
