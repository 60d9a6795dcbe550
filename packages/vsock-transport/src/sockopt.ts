import type net from 'node:net'
import { SocketAddress } from 'node:net'
import {
  NoOriginalDestinationError,
  SystemError,
  UnsupportedSocketError,
  VsockUnavailableError,
} from './errors.js'
import { AF_INET, AF_INET6, errnoName, loadAddon, systemErrorFor } from './native.js'
import { fdOf } from './vsock.js'

/** This machine's vsock CID, from IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock. */
export function localCid(): number {
  const result = loadAddon().localCid()
  if (result >= 0) return result
  const code = errnoName(result)
  const cause = systemErrorFor(result, 'ioctl(IOCTL_VM_SOCKETS_GET_LOCAL_CID)')
  if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO') {
    throw new VsockUnavailableError(
      `cannot read the local CID: /dev/vsock is not available (${code}); this kernel has no vsock. ` +
        'Use dev mode: set ENCLAVE_VSOCK_DEV_DIR or pass { dev: { dir } }',
      { cause, systemCode: code },
    )
  }
  throw new SystemError(
    `cannot read the local CID from /dev/vsock (${code})${code === 'EACCES' ? ': this user may not open /dev/vsock' : ''}`,
    { cause, systemCode: code },
  )
}

export interface OriginalDestination {
  host: string
  port: number
  family: 4 | 6
}

function toHost(bytes: Buffer, family: 4 | 6): string {
  if (family === 4) return Array.from(bytes.subarray(0, 4)).join('.')
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  // SocketAddress prints the canonical (compressed) IPv6 text.
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address
}

/**
 * Where an accepted TCP connection was going before an iptables REDIRECT/DNAT sent it here
 * (SO_ORIGINAL_DST, or IP6T_SO_ORIGINAL_DST for IPv6). Throws NoOriginalDestinationError
 * (systemCode ENOENT) when conntrack knows no original destination for it.
 */
export function originalDestination(socket: net.Socket): OriginalDestination {
  const fd = fdOf(socket)
  if (fd === undefined) {
    throw new UnsupportedSocketError(
      'originalDestination needs an open TCP socket (this one has no file descriptor)',
    )
  }
  const addon = loadAddon()
  const family = addon.family(fd)
  if (family !== AF_INET && family !== AF_INET6) {
    throw new UnsupportedSocketError(
      `originalDestination needs a TCP socket; this one has address family ${family < 0 ? errnoName(family) : family}`,
    )
  }
  // A dual-stack IPv6 socket carrying an IPv4 connection has an IPv4 conntrack entry.
  const mapped = family === AF_INET6 && (socket.localAddress ?? '').startsWith('::ffff:')
  const order: (4 | 6)[] = family === AF_INET ? [4] : mapped ? [4, 6] : [6]
  let result: [Buffer, number] | number = -1
  let used: 4 | 6 = 4
  for (const attempt of order) {
    used = attempt
    result = addon.originalDst(fd, attempt)
    if (typeof result !== 'number') break
  }
  if (typeof result !== 'number') return { host: toHost(result[0], used), port: result[1], family: used }
  const code = errnoName(result)
  const cause = systemErrorFor(result, 'getsockopt(SO_ORIGINAL_DST)')
  if (code === 'ENOENT' || code === 'ENOPROTOOPT') {
    const why =
      code === 'ENOENT'
        ? 'conntrack has no NAT entry for it (the connection was not redirected)'
        : 'connection tracking (nf_conntrack) is not loaded'
    throw new NoOriginalDestinationError(`this socket has no original destination: ${why}`, {
      cause,
      systemCode: code,
    })
  }
  throw new SystemError(`getsockopt(SO_ORIGINAL_DST) failed: ${code}`, { cause, systemCode: code })
}
