import { createDevNsm, type DevNsmOptions } from './dev-nsm.js'
import { InvalidOptionError } from './errors.js'
import { createNsmClient, type Nsm } from './nsm.js'
import { openNsmDevice } from './nsm-device.js'

export type OpenNsmOptions =
  | { readonly mode?: 'device'; readonly path?: string }
  | { readonly mode: 'dev'; readonly dev?: DevNsmOptions }

/**
 * One NSM interface for both worlds: the device (default; NsmUnavailableError outside an enclave)
 * or, when asked for explicitly, the dev NSM. There is no silent fallback from one to the other.
 */
export async function openNsm(options: OpenNsmOptions = {}): Promise<Nsm> {
  if (options.mode === 'dev') return createDevNsm(options.dev)
  if (options.mode !== undefined && options.mode !== 'device') {
    throw new InvalidOptionError(
      `mode must be 'device' or 'dev', got ${String((options as { mode: unknown }).mode)}`,
    )
  }
  return createNsmClient(openNsmDevice({ path: options.path }))
}
