// Which vsock CIDs the guest runner may dial (a helper, not a guest suite: the name starts with _).
// CIDs 0-3 (hypervisor, local, host, and this project's machines' own CID) reach the real host
// everywhere but inside a guest with the vsock_loopback transport, where CID 1 (and 2, and 3 for
// ENODEV) stay inside the guest. So dialling them needs BOTH: vsock_loopback loaded, and a
// deliberate yes (--force, or ENCLAVE_VM_GUEST=1, which tooling/vm's guest runner sets).

/** CIDs that can reach the real host from a machine without vsock_loopback. */
export const GUARDED_CIDS = Object.freeze([0, 1, 2, 3])

/**
 * Why dialling `cid` is refused, or undefined when it is allowed. Dev mode dials Unix sockets only.
 * @param {{ cid: number, dev: boolean, force: boolean, inGuest: boolean, loopbackLoaded: boolean }} facts
 * @returns {string | undefined}
 */
export function cidRefusal({ cid, dev, force, inGuest, loopbackLoaded }) {
  if (dev || !GUARDED_CIDS.includes(cid)) return undefined
  if (!loopbackLoaded) {
    return `refusing to dial CID ${cid}: vsock_loopback is not loaded (/sys/module/vsock_loopback), so CID ${cid} reaches the real host; run this inside the QEMU guest (pnpm test:vm) or use --dev DIR`
  }
  if (!force && !inGuest) {
    return `refusing to dial CID ${cid} without --force (vsock_loopback is loaded; pass --force to confirm this machine is a throwaway guest)`
  }
  return undefined
}
