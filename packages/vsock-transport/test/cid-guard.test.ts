import { describe, expect, it } from 'vitest'
import { cidRefusal, GUARDED_CIDS } from './guest/_cid-guard.mjs'

// The guest runner's guard (test/guest/_cid-guard.mjs), as a pure function: CIDs 0-3 reach the
// real host unless vsock_loopback is loaded, so dialling them needs the module AND a deliberate yes.
const base = { dev: false, force: false, inGuest: false, loopbackLoaded: false }

describe('cidRefusal', () => {
  it('guards exactly CIDs 0 to 3', () => {
    expect(GUARDED_CIDS).toEqual([0, 1, 2, 3])
  })

  it.each(GUARDED_CIDS)('refuses CID %i without vsock_loopback, whatever else is said', (cid) => {
    for (const force of [false, true])
      for (const inGuest of [false, true]) {
        const refusal = cidRefusal({ ...base, cid, force, inGuest })
        expect(refusal).toMatch(new RegExp(`refusing to dial CID ${cid}: vsock_loopback is not loaded`))
        expect(refusal).toMatch(/--dev DIR/)
      }
  })

  it.each(GUARDED_CIDS)('refuses CID %i with vsock_loopback but no --force outside the guest', (cid) => {
    expect(cidRefusal({ ...base, cid, loopbackLoaded: true })).toMatch(/without --force/)
  })

  it.each(GUARDED_CIDS)('allows CID %i with vsock_loopback and --force, or in the QEMU guest', (cid) => {
    expect(cidRefusal({ ...base, cid, loopbackLoaded: true, force: true })).toBeUndefined()
    expect(cidRefusal({ ...base, cid, loopbackLoaded: true, inGuest: true })).toBeUndefined()
  })

  it('leaves other CIDs and dev mode (Unix sockets only) alone', () => {
    expect(cidRefusal({ ...base, cid: 4 })).toBeUndefined()
    expect(cidRefusal({ ...base, cid: 7 })).toBeUndefined()
    for (const cid of GUARDED_CIDS) expect(cidRefusal({ ...base, cid, dev: true })).toBeUndefined()
  })
})
