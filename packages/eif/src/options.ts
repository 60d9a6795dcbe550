import { EifInvalidOptionsError } from './errors.js'
import { EIF_DEFAULT_CPUS, EIF_DEFAULT_MEM, type EifArch } from './format.js'
import type { EifMetadataInput } from './metadata.js'
import type { EifSigner } from './signing.js'

/** Options of createEifWriter() and writeEif(). */
export interface EifWriterOptions {
  /** Target architecture, header flag bit 0. @default 'x86_64' */
  arch?: EifArch
  /** Metadata section contents; defaults give reproducible bytes. */
  metadata?: EifMetadataInput
  /** Signs PCR0 into a signature section (and gives PCR8). @default unsigned */
  signer?: EifSigner
  /** Header default_mem in bytes; unused by the hypervisor. @default 1073741824 (EifBuilder's value) */
  defaultMemory?: number | bigint
  /** Header default_cpus; unused by the hypervisor. @default 2 */
  defaultCpus?: number | bigint
  /** Mode of the created file. @default 0o644 */
  mode?: number
  /** Cancels the write; the temporary file is removed. */
  signal?: AbortSignal
}

export interface ResolvedWriterOptions {
  readonly arch: EifArch
  readonly metadata: EifMetadataInput | undefined
  readonly signer: EifSigner | undefined
  readonly defaultMemory: bigint
  readonly defaultCpus: bigint
  readonly mode: number
  readonly signal: AbortSignal | undefined
}

export const WRITER_DEFAULTS = Object.freeze({
  arch: 'x86_64' as EifArch,
  defaultMemory: BigInt(EIF_DEFAULT_MEM),
  defaultCpus: BigInt(EIF_DEFAULT_CPUS),
  mode: 0o644,
})

const U64_MAX = 2n ** 64n - 1n

function u64(name: string, value: number | bigint | undefined, fallback: bigint): bigint {
  if (value === undefined) return fallback
  const big = typeof value === 'bigint' ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n
  if (big < 0n || big > U64_MAX) {
    throw new EifInvalidOptionsError(`${name} must be an integer from 0 to 2^64-1, got ${String(value)}`)
  }
  return big
}

export function resolveWriterOptions(options: EifWriterOptions): ResolvedWriterOptions {
  if (typeof options !== 'object' || options === null) {
    throw new EifInvalidOptionsError('writer options must be an object')
  }
  const arch = options.arch ?? WRITER_DEFAULTS.arch
  if (arch !== 'x86_64' && arch !== 'aarch64') {
    throw new EifInvalidOptionsError(`arch must be 'x86_64' or 'aarch64', got ${String(arch)}`)
  }
  const mode = options.mode ?? WRITER_DEFAULTS.mode
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new EifInvalidOptionsError(`mode must be a file mode from 0 to 0o7777, got ${String(mode)}`)
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new EifInvalidOptionsError('signal must be an AbortSignal')
  }
  return Object.freeze({
    arch,
    metadata: options.metadata,
    signer: options.signer,
    defaultMemory: u64('defaultMemory', options.defaultMemory, WRITER_DEFAULTS.defaultMemory),
    defaultCpus: u64('defaultCpus', options.defaultCpus, WRITER_DEFAULTS.defaultCpus),
    mode,
    signal: options.signal,
  })
}
