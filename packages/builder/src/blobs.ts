import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { InputMissingError } from './errors.js'

/** Where aws-nitro-enclaves-cli installs its kernel, cmdline, init and nsm.ko. */
export const DEFAULT_BLOBS_DIR = '/usr/share/nitro_enclaves/blobs'

export interface Blobs {
  readonly kernel: Buffer
  /** Trimmed, as nitro-cli does (no trailing newline in the EIF). */
  readonly cmdline: Buffer
  readonly init: Buffer
  /** Absent in blob sets for kernels with the NSM driver built in. */
  readonly nsm?: Buffer
  /** From line 3 of `<kernel>.config` (`# Linux/x86 4.14.256 Kernel Configuration`), when present. */
  readonly operatingSystem?: string
  readonly kernelVersion?: string
}

const fix = (dir: string) =>
  `pass --blobs DIR holding bzImage (Image on aarch64), cmdline, init and nsm.ko; the default ${DEFAULT_BLOBS_DIR} comes with aws-nitro-enclaves-cli (searched in ${dir})`

async function need(dir: string, name: string, what: string): Promise<Buffer> {
  const path = join(dir, name)
  try {
    return await readFile(path)
  } catch (err) {
    throw new InputMissingError(what, path, fix(dir), { cause: err })
  }
}

async function maybe(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Reads the blob set for `arch` from `dir`. */
export async function readBlobs(dir: string, arch: 'x86_64' | 'aarch64' = 'x86_64'): Promise<Blobs> {
  const kernelName = arch === 'aarch64' ? 'Image' : 'bzImage'
  const kernel = await need(dir, kernelName, 'the enclave kernel')
  const cmdline = Buffer.from(
    (await need(dir, 'cmdline', 'the kernel command line')).toString('utf8').trim(),
    'utf8',
  )
  const init = await need(dir, 'init', 'the enclave init')
  const nsm = await maybe(join(dir, 'nsm.ko'))
  const config = await maybe(join(dir, `${kernelName}.config`))
  const line = config?.toString('utf8').split('\n')[2] ?? ''
  const m = /^#\s*(\S+)\s+(\S+)\s+Kernel Configuration/.exec(line)
  return {
    kernel,
    cmdline,
    init,
    ...(nsm ? { nsm } : {}),
    ...(m ? { operatingSystem: m[1]!, kernelVersion: m[2]! } : {}),
  }
}
