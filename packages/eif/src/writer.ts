import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { type FileHandle, open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { crc32, crc32Combine } from './crc.js'
import {
  EifAbortedError,
  EifCrcMismatchError,
  EifError,
  EifInvalidOptionsError,
  EifIoError,
  EifSizeMismatchError,
  EifUnsupportedVersionError,
  EifWriterStateError,
} from './errors.js'
import {
  EIF_HEADER_SIZE,
  EIF_MAX_SECTIONS,
  EIF_SECTION_HEADER_SIZE,
  EIF_SIGNATURE_MAX_SIZE,
  EIF_VERSION,
  type EifSectionInfo,
  type EifSectionTypeName,
  encodeHeader,
  encodeSectionHeader,
  HEADER,
  sectionTypeCode,
} from './format.js'
import { buildMetadata, type EifMetadata, encodeMetadata } from './metadata.js'
import { type EifWriterOptions, resolveWriterOptions } from './options.js'
import { type EifPcrs, PcrAccumulator } from './pcr.js'
import { openEif } from './reader.js'
import { buildSignatureSection, checkSigner, type EifSigner } from './signing.js'

/**
 * Section data for the writer. A string is UTF-8 content (not a path); `{ path }` streams a file;
 * an async iterable (a Node Readable, a generator) is streamed and may declare its `size`, which
 * is then checked.
 */
export type EifSource =
  | Uint8Array
  | string
  | { path: string }
  | { stream: AsyncIterable<Uint8Array>; size?: number }
  | AsyncIterable<Uint8Array>

export interface EifWriteResult {
  path: string
  /** Total file size. */
  size: number
  crc32: number
  pcrs: EifPcrs
  sections: EifSectionInfo[]
  metadata: EifMetadata
}

/** Incremental writer: kernel(), cmdline(), one or more ramdisk(), then finish(). */
export interface EifWriter {
  kernel(source: EifSource): Promise<void>
  cmdline(source: EifSource): Promise<void>
  ramdisk(source: EifSource): Promise<void>
  /** Signs (when a signer was given), writes the header and renames the file into place. */
  finish(): Promise<EifWriteResult>
  /** Removes the temporary file; idempotent. The destination is never touched. */
  abort(): Promise<void>
}

type WriterState = 'kernel' | 'cmdline' | 'ramdisk' | 'finished' | 'aborted'

const WRITE_BATCH = 1024 * 1024
const READ_CHUNK = 1024 * 1024

/** Opens a temporary file next to `path`; the EIF appears at `path` only when finish() succeeds. */
export function createEifWriter(path: string, options: EifWriterOptions = {}): Promise<EifWriter> {
  return openWriter(path, options, undefined)
}

/** `rawMetadata` copies an existing metadata section byte for byte (signEif). */
async function openWriter(
  path: string,
  options: EifWriterOptions,
  rawMetadata: { bytes: Buffer; parsed: EifMetadata } | undefined,
): Promise<EifWriter> {
  const opts = resolveWriterOptions(options)
  const certificate = opts.signer === undefined ? undefined : checkSigner(opts.signer)
  const metadata = rawMetadata?.parsed ?? buildMetadata(opts.metadata)
  const metadataBytes = rawMetadata?.bytes ?? encodeMetadata(metadata)
  const tempPath = join(dirname(path), `.${basename(path)}.${process.pid}.${randomSuffix()}.tmp`)
  let fh: FileHandle
  try {
    fh = await open(tempPath, 'wx', opts.mode)
  } catch (cause) {
    throw new EifIoError(`cannot create ${tempPath}: ${(cause as Error).message}`, { cause })
  }

  let state: WriterState = 'kernel'
  let busy = false
  let position = EIF_HEADER_SIZE
  // CRC of every byte from offset 548 on; the header's own CRC is combined in at finish().
  let crcBody = 0
  const sections: EifSectionInfo[] = []
  const pcr = new PcrAccumulator()
  const maxSections = EIF_MAX_SECTIONS - (opts.signer === undefined ? 0 : 1)

  const writeAt = async (buf: Uint8Array, at: number) => {
    let done = 0
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, at + done)
      done += bytesWritten
    }
  }

  const writeSection = async (type: EifSectionTypeName, source: EifSource) => {
    // The signature always fits: maxSections kept its slot free.
    if (sections.length >= (type === 'signature' ? EIF_MAX_SECTIONS : maxSections)) {
      throw new EifInvalidOptionsError(
        `an EIF holds at most ${EIF_MAX_SECTIONS} sections (kernel, cmdline, metadata, ramdisks${opts.signer ? ', signature' : ''}); too many ramdisks`,
      )
    }
    const headerAt = position
    const dataAt = headerAt + EIF_SECTION_HEADER_SIZE
    let size = 0
    let crcData = 0
    pcr.begin(type)
    const batch = Buffer.allocUnsafe(WRITE_BATCH)
    let batched = 0
    const flush = async () => {
      if (batched === 0) return
      await writeAt(batch.subarray(0, batched), dataAt + size - batched)
      batched = 0
    }
    const { chunks, declaredSize } = toChunks(source, type)
    for await (const chunk of chunks) {
      if (opts.signal?.aborted) throw new EifAbortedError(undefined, { cause: opts.signal.reason })
      if (!(chunk instanceof Uint8Array)) {
        throw new EifInvalidOptionsError(`the ${type} stream yielded a ${typeof chunk}, not bytes`)
      }
      if (chunk.length === 0) continue
      crcData = crc32(chunk, crcData)
      pcr.update(chunk)
      if (chunk.length >= WRITE_BATCH) {
        await flush()
        size += chunk.length
        await writeAt(chunk, dataAt + size - chunk.length)
        continue
      }
      if (batched + chunk.length > WRITE_BATCH) await flush()
      batch.set(chunk, batched)
      batched += chunk.length
      size += chunk.length
    }
    await flush()
    if (declaredSize !== undefined && declaredSize !== size) {
      throw new EifSizeMismatchError(
        `the ${type} source declared ${declaredSize} bytes but produced ${size}`,
        { sectionIndex: sections.length },
      )
    }
    const header = encodeSectionHeader(sectionTypeCode(type), size)
    await writeAt(header, headerAt)
    crcBody = crc32Combine(crc32(header, crcBody), crcData, size)
    sections.push({ index: sections.length, type, offset: headerAt, size })
    position = dataAt + size
  }

  const cleanup = async () => {
    await fh.close().catch(() => {})
    await unlink(tempPath).catch(() => {})
  }

  // Serialises calls and turns any failure into a removed temp file and an aborted writer.
  const step = async <T>(name: string, allowed: WriterState[], run: () => Promise<T>): Promise<T> => {
    if (busy) throw new EifWriterStateError(`${name}() called while another writer call is still running`)
    if (!allowed.includes(state)) {
      throw new EifWriterStateError(
        state === 'finished' || state === 'aborted'
          ? `${name}() called after the writer was ${state}`
          : `${name}() called out of order: next is ${state}() (order: kernel, cmdline, ramdisk…, finish)`,
      )
    }
    busy = true
    try {
      if (opts.signal?.aborted) throw new EifAbortedError(undefined, { cause: opts.signal.reason })
      return await run()
    } catch (err) {
      const abortedByCaller = state === 'aborted'
      state = 'aborted'
      await cleanup()
      if (err instanceof EifError) throw err
      // abort() during a call closes the file under it: report the abort, not the EBADF.
      if (abortedByCaller) throw new EifAbortedError(`${name}() was interrupted by abort()`, { cause: err })
      throw new EifIoError(`writing ${tempPath} failed: ${(err as Error).message}`, { cause: err })
    } finally {
      busy = false
    }
  }

  return {
    kernel: (source) =>
      step('kernel', ['kernel'], async () => {
        await writeSection('kernel', source)
        state = 'cmdline'
      }),
    cmdline: (source) =>
      step('cmdline', ['cmdline'], async () => {
        await writeSection('cmdline', source)
        // nitro-cli order: kernel, cmdline, metadata, ramdisks, signature.
        await writeSection('metadata', metadataBytes)
        state = 'ramdisk'
      }),
    ramdisk: (source) => step('ramdisk', ['ramdisk'], () => writeSection('ramdisk', source)),
    finish: () => {
      if (state === 'ramdisk' && !busy && !sections.some((s) => s.type === 'ramdisk')) {
        return Promise.reject(
          new EifWriterStateError('finish() called before any ramdisk(): an EIF needs at least one'),
        )
      }
      return step('finish', ['ramdisk'], async () => {
        const { pcrs, pcr0 } = pcr.digest(certificate?.raw)
        if (opts.signer !== undefined && certificate !== undefined) {
          const signature = await buildSignatureSection(opts.signer, certificate, pcr0)
          if (signature.length > EIF_SIGNATURE_MAX_SIZE) {
            throw new EifInvalidOptionsError(
              `the signature section is ${signature.length} bytes; nitro-cli allows ${EIF_SIGNATURE_MAX_SIZE} (certificate too large)`,
            )
          }
          await writeSection('signature', signature)
        }
        const header = encodeHeader({
          version: EIF_VERSION,
          flags: opts.arch === 'aarch64' ? 1 : 0,
          defaultMem: opts.defaultMemory,
          defaultCpus: opts.defaultCpus,
          sections,
          crc32: 0,
        })
        const crc = crc32Combine(crc32(header.subarray(0, HEADER.crc)), crcBody, position - EIF_HEADER_SIZE)
        header.writeUInt32BE(crc, HEADER.crc)
        await writeAt(header, 0)
        await fh.sync()
        await fh.close()
        try {
          await rename(tempPath, path)
        } catch (cause) {
          throw new EifIoError(`cannot rename ${tempPath} to ${path}: ${(cause as Error).message}`, { cause })
        }
        state = 'finished'
        await syncDir(dirname(path))
        return { path, size: position, crc32: crc, pcrs, sections, metadata }
      })
    },
    abort: async () => {
      if (state === 'finished' || state === 'aborted') return
      state = 'aborted'
      await cleanup()
    },
  }
}

export interface WriteEifInput extends EifWriterOptions {
  kernel: EifSource
  /** The kernel command line, written as is (nitro-cli trims trailing whitespace from its blob). */
  cmdline: EifSource
  /** Bootstrap ramdisk first, then the customer ramdisk(s). */
  ramdisks: readonly EifSource[]
}

/** Writes a complete EIF to `path` atomically, streaming every section once. */
export async function writeEif(path: string, input: WriteEifInput): Promise<EifWriteResult> {
  if (!Array.isArray(input.ramdisks) || input.ramdisks.length === 0) {
    throw new EifInvalidOptionsError('ramdisks must be a non-empty array: an EIF needs at least one ramdisk')
  }
  const writer = await createEifWriter(path, input)
  try {
    await writer.kernel(input.kernel)
    await writer.cmdline(input.cmdline)
    for (const ramdisk of input.ramdisks) await writer.ramdisk(ramdisk)
    return await writer.finish()
  } finally {
    await writer.abort()
  }
}

export interface SignEifOptions {
  signer: EifSigner
  /** Cancels the write; the temporary file is removed. */
  signal?: AbortSignal
  /** Mode of the created file. @default 0o644 */
  mode?: number
}

/**
 * Signs an existing version 4 EIF, like `nitro-cli sign-eif`: copies kernel, cmdline, metadata
 * (byte for byte) and ramdisks, replaces any signature, and writes `output` atomically. `output`
 * may be `input`. A corrupt input (CRC mismatch) is refused.
 */
export async function signEif(
  input: string,
  output: string,
  options: SignEifOptions,
): Promise<EifWriteResult> {
  if (typeof options !== 'object' || options === null || options.signer === undefined) {
    throw new EifInvalidOptionsError('signEif needs { signer }')
  }
  const image = await openEif(input, options)
  try {
    if (image.header.version !== EIF_VERSION) {
      throw new EifUnsupportedVersionError(
        `signEif handles version ${EIF_VERSION} images; ${input} is version ${image.header.version}`,
        { offset: HEADER.version },
      )
    }
    const { crc } = await image.measure(options)
    if (!crc.ok) throw new EifCrcMismatchError(crc.stored, crc.computed, { offset: HEADER.crc })
    const metadataIndex = image.sections.findIndex((s) => s.type === 'metadata')
    const chunks: Buffer[] = []
    for await (const chunk of image.sectionData(metadataIndex, options)) chunks.push(chunk)
    const writer = await openWriter(
      output,
      {
        arch: image.header.arch,
        signer: options.signer,
        defaultMemory: image.header.defaultMemory,
        defaultCpus: image.header.defaultCpus,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.mode === undefined ? {} : { mode: options.mode }),
      },
      { bytes: Buffer.concat(chunks), parsed: image.metadata! },
    )
    try {
      for (const s of image.sections) {
        const data = image.sectionData(s.index, options)
        if (s.type === 'kernel') await writer.kernel(data)
        else if (s.type === 'cmdline') await writer.cmdline(data)
        else if (s.type === 'ramdisk') await writer.ramdisk(data)
      }
      return await writer.finish()
    } finally {
      await writer.abort()
    }
  } finally {
    await image.close()
  }
}

function toChunks(
  source: EifSource,
  type: string,
): { chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>; declaredSize: number | undefined } {
  if (typeof source === 'string') return { chunks: [Buffer.from(source, 'utf8')], declaredSize: undefined }
  if (source instanceof Uint8Array) return { chunks: [source], declaredSize: undefined }
  if (typeof source === 'object' && source !== null) {
    if ('path' in source && typeof source.path === 'string') {
      return { chunks: readFileChunks(source.path, type), declaredSize: undefined }
    }
    if ('stream' in source && isAsyncIterable(source.stream)) {
      const size = source.size
      if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
        throw new EifInvalidOptionsError(`the ${type} size must be a non-negative integer, got ${size}`)
      }
      return { chunks: source.stream, declaredSize: size }
    }
    if (isAsyncIterable(source)) return { chunks: source, declaredSize: undefined }
  }
  throw new EifInvalidOptionsError(
    `the ${type} source must be bytes, a string, { path }, { stream, size? } or an async iterable of bytes`,
  )
}

async function* readFileChunks(path: string, type: string): AsyncIterable<Uint8Array> {
  const stream = createReadStream(path, { highWaterMark: READ_CHUNK })
  try {
    for await (const chunk of stream) yield chunk as Buffer
  } catch (cause) {
    throw new EifIoError(`cannot read the ${type} from ${path}: ${(cause as Error).message}`, { cause })
  } finally {
    stream.destroy()
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value
}

function randomSuffix(): string {
  return randomBytes(6).toString('hex')
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename durable; some file systems refuse fsync on a directory, which is harmless.
  try {
    const handle = await open(dir, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch {}
}
