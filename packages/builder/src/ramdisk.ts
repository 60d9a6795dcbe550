import { Writable } from 'node:stream'
import { CpioWriter } from './cpio.js'
import { ImageInvalidError } from './errors.js'
import { emitTree, GENERATED_MTIME, type LayerTree } from './flatten.js'
import type { ImageRunConfig, LayerSource } from './image.js'

/** Directories nitro-cli adds under rootfs/ (made here only when the image lacks them). */
export const ROOTFS_DIRS = ['dev', 'run', 'sys', 'var', 'proc', 'tmp'] as const

const generated = { uid: 0, gid: 0, mtime: GENERATED_MTIME }

/** The bootstrap ramdisk (ramdisk 0): `dev/`, `init` and `nsm.ko`, as nitro-cli's linuxkit file list. */
export async function bootstrapRamdisk(init: Buffer, nsm?: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk)
      cb()
    },
  })
  const cpio = new CpioWriter(sink)
  await cpio.add({ ...generated, name: 'dev', type: 'directory', mode: 0o755, size: 0 })
  await cpio.add({ ...generated, name: 'init', type: 'file', mode: 0o755, size: init.length }, init)
  if (nsm) await cpio.add({ ...generated, name: 'nsm.ko', type: 'file', mode: 0o755, size: nsm.length }, nsm)
  await cpio.finish()
  return Buffer.concat(chunks)
}

/** nitro-cli's rule: the command is CMD when present, otherwise ENTRYPOINT (never both). */
export function commandOf(config: ImageRunConfig, ref: string): readonly string[] {
  const cmd = config.Cmd?.length ? config.Cmd : config.Entrypoint
  if (!cmd?.length)
    throw new ImageInvalidError(ref, 'the image has neither CMD nor ENTRYPOINT: nothing to run')
  return cmd
}

const lines = (items: readonly string[]) => Buffer.from(items.map((s) => `${s}\n`).join(''), 'utf8')

export interface CustomerRamdiskInput {
  readonly tree: LayerTree
  readonly layers: readonly LayerSource[]
  readonly command: readonly string[]
  readonly env: readonly string[]
  readonly signal?: AbortSignal
  readonly onProgress?: (dataBytes: number) => void
}

/**
 * Writes the customer ramdisk (ramdisk 1) to `sink`: `rootfs/` with the flattened image, the
 * missing `rootfs/{dev,run,sys,var,proc,tmp}`, then `cmd` and `env`, one entry per line.
 */
export async function writeCustomerRamdisk(input: CustomerRamdiskInput, sink: Writable): Promise<number> {
  const cpio = new CpioWriter(sink)
  await cpio.add({ ...generated, name: 'rootfs', type: 'directory', mode: 0o755, size: 0 })
  await emitTree(input.tree, input.layers, cpio, {
    prefix: 'rootfs/',
    ...(input.signal ? { signal: input.signal } : {}),
    ...(input.onProgress ? { onProgress: input.onProgress } : {}),
  })
  for (const dir of ROOTFS_DIRS) {
    if (!input.tree.get(dir))
      await cpio.add({ ...generated, name: `rootfs/${dir}`, type: 'directory', mode: 0o755, size: 0 })
  }
  const cmd = lines(input.command)
  const env = lines(input.env)
  await cpio.add({ ...generated, name: 'cmd', type: 'file', mode: 0o644, size: cmd.length }, cmd)
  await cpio.add({ ...generated, name: 'env', type: 'file', mode: 0o644, size: env.length }, env)
  return cpio.finish()
}
