import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { pack } from 'tar-stream'
import { InputMissingError } from './errors.js'
import { GENERATED_MTIME } from './flatten.js'
import type { ImageRunConfig, LayerSource } from './image.js'

/** Where enclaver puts things in the app image. */
export const ODYN_PATH = '/sbin/odyn'
export const MANIFEST_PATH = '/etc/enclaver/enclaver.yaml'
export const CONFIG_DIR = '/etc/enclaver'

export interface AmendInputs {
  /** The manifest text, copied as is. */
  readonly manifestText: string
  /** Path of the odyn (supervisor) binary to install at /sbin/odyn. */
  readonly odynPath: string
}

/**
 * The extra layer `enclaver build` adds to the app image, as a tar: the manifest and odyn, owned by
 * 0:0. Parent directories are left out so the image's own (mode, owner) stay; the flattener makes
 * missing ones. Fixed mtimes keep the layer reproducible.
 */
export async function amendmentLayer({ manifestText, odynPath }: AmendInputs): Promise<LayerSource> {
  let size: number
  try {
    const st = await stat(odynPath)
    if (!st.isFile()) throw new Error('not a regular file')
    size = st.size
  } catch (err) {
    throw new InputMissingError(
      'the odyn supervisor binary',
      odynPath,
      'pass --odyn FILE (the odyn executable)',
      {
        cause: err,
      },
    )
  }
  const manifest = Buffer.from(manifestText, 'utf8')
  const common = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: new Date(GENERATED_MTIME * 1000) }
  return {
    id: 'enclaver amendment',
    open: async () => {
      const p = pack()
      p.entry({ ...common, name: MANIFEST_PATH.slice(1), mode: 0o644, size: manifest.length }, manifest)
      const entry = p.entry({ ...common, name: ODYN_PATH.slice(1), mode: 0o755, size })
      pipeline(createReadStream(odynPath), entry).then(
        () => p.finalize(),
        (err) => p.destroy(err),
      )
      return p as unknown as Readable
    },
  }
}

/** ENTRYPOINT = odyn --config-dir /etc/enclaver -- <original ENTRYPOINT…> <original CMD…>; CMD cleared. */
export function amendConfig(config: ImageRunConfig): ImageRunConfig {
  return {
    ...config,
    Entrypoint: [
      ODYN_PATH,
      '--config-dir',
      CONFIG_DIR,
      '--',
      ...(config.Entrypoint ?? []),
      ...(config.Cmd ?? []),
    ],
    Cmd: null,
  }
}
