import type { Socket } from 'node:net'
import { peerAddressOf } from '@enclave/vsock-transport'

/** Watchdog connections one session keeps at once (Go opens one; a few allow a reconnect overlap). */
export const MAX_WATCHDOG_CHANNELS = 4

/** Where the host learns a connection's vsock CID; injectable so tests can play several enclaves. */
export type PeerCidSource = (socket: Socket) => number | undefined

/** The CID of an accepted AF_VSOCK socket; undefined in dev mode (Unix sockets have no CID). */
export const vsockPeerCid: PeerCidSource = (socket) => {
  const peer = peerAddressOf(socket)
  return peer?.scheme === 'vsock' ? peer.cid : undefined
}

/**
 * Whether a connection from `cid` belongs to the running session whose handshake came from
 * `sessionCid`: the same CID, or one the operator listed in `allow`. In dev mode neither side has a
 * CID (undefined === undefined), so every connection passes: dev mode is a single machine.
 */
export function fromSessionEnclave(
  cid: number | undefined,
  sessionCid: number | undefined,
  allow: readonly number[],
): boolean {
  return cid === sessionCid || (cid !== undefined && allow.includes(cid))
}

/**
 * Whether settings may point a server tunnel at `enclaveCid`: the CID the handshake came from, or
 * one in `allow`. Without a peer CID (dev mode) only `allow` can restrict it; an empty `allow`
 * passes, since the dev "CIDs" are file names in a directory the operator owns.
 */
export function serverCidAllowed(
  enclaveCid: number,
  peerCid: number | undefined,
  allow: readonly number[],
): boolean {
  if (allow.includes(enclaveCid)) return true
  if (peerCid === undefined) return allow.length === 0
  return enclaveCid === peerCid
}
