import { type DevModeOptions, localCid } from '@enclave/vsock-transport'

/**
 * This enclave's own CID, for `servers[].enclaveCid`. In dev mode (option, or ENCLAVE_VSOCK_DEV_DIR)
 * it is the dev CID (option, ENCLAVE_VSOCK_DEV_CID, default 3), as vsock-transport uses for listening.
 */
export function enclaveCid(dev?: DevModeOptions | false): number {
  const dir = dev === false ? undefined : (dev?.dir ?? process.env.ENCLAVE_VSOCK_DEV_DIR)
  if (dir) {
    const cid = dev ? dev.cid : undefined
    return cid ?? Number(process.env.ENCLAVE_VSOCK_DEV_CID ?? 3)
  }
  return localCid()
}
