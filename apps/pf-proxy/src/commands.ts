import type { Socket } from 'node:net'
import { encodeOriginalDestination, OriginalDestinationDecoder } from '@enclave/protocol'
import {
  forward,
  type Logger,
  type Resolver,
  readPrefix,
  type Tunnel,
  type TunnelOptions,
} from '@enclave/tunnel'
import {
  type DevModeOptions,
  NoOriginalDestinationError,
  type OriginalDestination,
  originalDestination,
  type TransportAddress,
} from '@enclave/vsock-transport'
import { type Allowlist, targetFor, type VsockTarget } from './addresses.js'

/** Settings every tool shares (from the common flags). */
export interface CommonSettings {
  connectTimeoutMs: number
  idleTimeoutMs: number
  maxConnections: number
  drainTimeoutMs: number
  /** Dev mode for vsock addresses: undefined = from ENCLAVE_VSOCK_DEV_DIR. */
  dev: DevModeOptions | undefined
}

export type ToolSpec =
  | { tool: 'ip-to-vsock'; ipAddr: TransportAddress; vsockAddr: TransportAddress }
  | { tool: 'vsock-to-ip'; vsockAddr: TransportAddress; ipAddr: TransportAddress }
  | { tool: 'ip-to-vsock-transparent'; ipAddr: TransportAddress; vsockAddr: TransportAddress }
  | { tool: 'vsock-to-ip-transparent'; vsockAddr: TransportAddress; allow: Allowlist }
  | { tool: 'transparent-port-to-vsock'; ipAddr: TransportAddress; vsock: VsockTarget }

/** Starts the tunnel one tool describes. */
export function startTool(spec: ToolSpec, common: CommonSettings, logger: Logger): Promise<Tunnel> {
  const base: Omit<TunnelOptions, 'from' | 'to'> = {
    connectTimeoutMs: common.connectTimeoutMs,
    idleTimeoutMs: common.idleTimeoutMs,
    maxConnections: common.maxConnections,
    drainTimeoutMs: common.drainTimeoutMs,
    resolveTimeoutMs: common.connectTimeoutMs,
    ...(common.dev ? { listen: { dev: common.dev }, connect: { dev: common.dev } } : {}),
  }
  switch (spec.tool) {
    case 'ip-to-vsock':
      return forward({ ...base, from: spec.ipAddr, to: spec.vsockAddr }, { logger })
    case 'vsock-to-ip':
      return forward({ ...base, from: spec.vsockAddr, to: spec.ipAddr }, { logger })
    case 'ip-to-vsock-transparent':
      return forward({ ...base, from: spec.ipAddr, to: sendOriginalDestination(spec.vsockAddr) }, { logger })
    case 'vsock-to-ip-transparent':
      if (spec.allow.allowAny) {
        logger.warn(
          { listen: spec.vsockAddr },
          '--allow-any: this proxy dials any destination a peer names in its header, except loopback, link-local and metadata addresses not listed in --allow',
        )
      }
      return forward({ ...base, from: spec.vsockAddr, to: dialHeaderDestination(spec.allow) }, { logger })
    case 'transparent-port-to-vsock':
      return forward({ ...base, from: spec.ipAddr, to: samePortOnVsock(spec.vsock) }, { logger })
  }
}

/** ip-to-vsock-transparent: the pre-NAT destination travels ahead of the payload as Sentient's header. */
function sendOriginalDestination(target: TransportAddress): Resolver {
  return (inbound) => ({
    address: target,
    preamble: encodeOriginalDestination(redirectedDestination(inbound)),
  })
}

/**
 * SO_ORIGINAL_DST of a connection that reached the listener directly (no REDIRECT/DNAT) is, when
 * conntrack runs, the listener's own address: relaying it would dial this proxy again, a loop.
 */
function redirectedDestination(inbound: Socket): OriginalDestination {
  const destination = originalDestination(inbound)
  if (destination.port === inbound.localPort && sameHost(destination.host, inbound.localAddress)) {
    throw new NoOriginalDestinationError(
      `the connection from ${inbound.remoteAddress}:${inbound.remotePort} was not redirected: its original destination is this listener; reach it only through an iptables REDIRECT or DNAT rule`,
    )
  }
  return destination
}

function sameHost(a: string, b: string | undefined): boolean {
  return b !== undefined && (a === b || `::ffff:${a}` === b)
}

/** vsock-to-ip-transparent: read the header, check it against the allowlist, dial it. */
function dialHeaderDestination(allow: Allowlist): Resolver {
  return async (inbound, { signal }) => {
    const decoder = new OriginalDestinationDecoder()
    const { value, rest } = await readPrefix(
      inbound,
      (chunk) => {
        const destination = decoder.push(chunk)
        return destination ? { value: destination, rest: decoder.remaining() } : undefined
      },
      { signal, maxBytes: 64 },
    )
    allow.check(value.host, value.port)
    const host = value.family === 6 ? `[${value.host}]` : value.host
    return { address: `tcp://${host}:${value.port}`, preamble: rest }
  }
}

/** transparent-port-to-vsock: no header; the vsock port is the original destination port. */
function samePortOnVsock(target: VsockTarget): Resolver {
  return (inbound) => ({ address: targetFor(target, redirectedDestination(inbound).port) })
}
