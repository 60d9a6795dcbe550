import { createHash, type Hash } from 'node:crypto'

/**
 * Nitro PCR measurements of an EIF: SHA-384 registers that start at 48 zero bytes and are
 * extended once with the SHA-384 of the measured bytes (nitro-cli's EifHasher without cache).
 */

export const PCR_SIZE = 48
const ZERO_PCR = Buffer.alloc(PCR_SIZE)

/** SHA-384(previous ‖ data): extends a PCR that holds `previous` (48 zero bytes by default). */
export function pcrExtend(data: Uint8Array | string, previous: Uint8Array = ZERO_PCR): Buffer {
  if (previous.length !== PCR_SIZE) {
    throw new RangeError(`pcrExtend: previous must be ${PCR_SIZE} bytes, got ${previous.length}`)
  }
  return createHash('sha384').update(previous).update(data).digest()
}

/** PCR values as lowercase hex, the way nitro-cli prints them. */
export interface EifPcrs {
  /** extend(H(kernel ‖ cmdline ‖ every ramdisk)). */
  PCR0: string
  /** extend(H(kernel ‖ cmdline ‖ first ramdisk)). */
  PCR1: string
  /** extend(H(every ramdisk but the first)). */
  PCR2: string
  /** extend(H(signing certificate DER)); only for a signed EIF. */
  PCR8?: string
}

/**
 * Streams section data into the PCR0/1/2 hashers in file order. Only kernel, cmdline and ramdisk
 * data is measured; metadata and signature sections are not.
 */
export class PcrAccumulator {
  readonly #image: Hash = createHash('sha384')
  readonly #bootstrap: Hash = createHash('sha384')
  readonly #app: Hash = createHash('sha384')
  #ramdisks = 0
  #currentIsFirstRamdisk = false
  #current: 'boot' | 'ramdisk' | 'none' = 'none'

  /** Starts a section; call update() with its data next. */
  begin(type: 'kernel' | 'cmdline' | 'ramdisk' | 'metadata' | 'signature'): void {
    if (type === 'kernel' || type === 'cmdline') {
      this.#current = 'boot'
    } else if (type === 'ramdisk') {
      this.#current = 'ramdisk'
      this.#currentIsFirstRamdisk = this.#ramdisks === 0
      this.#ramdisks++
    } else {
      this.#current = 'none'
    }
  }

  update(chunk: Uint8Array): void {
    if (this.#current === 'none') return
    this.#image.update(chunk)
    if (this.#current === 'boot' || this.#currentIsFirstRamdisk) this.#bootstrap.update(chunk)
    else this.#app.update(chunk)
  }

  /** PCR0 as raw bytes: needed before digest() to sign the image. */
  digest(certificateDer?: Uint8Array): { pcrs: EifPcrs; pcr0: Buffer } {
    const pcr0 = pcrExtend(this.#image.digest())
    const pcrs: EifPcrs = {
      PCR0: pcr0.toString('hex'),
      PCR1: pcrExtend(this.#bootstrap.digest()).toString('hex'),
      PCR2: pcrExtend(this.#app.digest()).toString('hex'),
    }
    if (certificateDer !== undefined) pcrs.PCR8 = pcr8(certificateDer).toString('hex')
    return { pcrs, pcr0 }
  }
}

/** PCR8 of a signing certificate, from its DER bytes. */
export function pcr8(certificateDer: Uint8Array): Buffer {
  return pcrExtend(createHash('sha384').update(certificateDer).digest())
}

export interface PcrInput {
  kernel: Uint8Array
  cmdline: Uint8Array | string
  ramdisks: readonly Uint8Array[]
  /** DER of the signing certificate, for PCR8. */
  certificateDer?: Uint8Array
}

/** PCR0, 1, 2 (and 8) of in-memory sections, without building an EIF. */
export function computePcrs(input: PcrInput): EifPcrs {
  const acc = new PcrAccumulator()
  acc.begin('kernel')
  acc.update(input.kernel)
  acc.begin('cmdline')
  acc.update(typeof input.cmdline === 'string' ? Buffer.from(input.cmdline, 'utf8') : input.cmdline)
  for (const ramdisk of input.ramdisks) {
    acc.begin('ramdisk')
    acc.update(ramdisk)
  }
  return acc.digest(input.certificateDer).pcrs
}
