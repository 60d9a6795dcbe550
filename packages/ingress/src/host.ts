import { forward, silentLogger, type Tunnel } from '@enclave/tunnel'
import { InvalidOptionsError } from './errors.js'
import { type Context, DEFAULTS, type IngressHostOptions, integer } from './options.js'
import { encodeProxyV2 } from './proxy-v2.js'

/**
 * The host half of one ingress port: TCP listenHost:listenPort → vsock (enclaveCid, listenPort),
 * relayed by @enclave/tunnel. With `proxyProtocol` each connection starts with a PROXY v2 header
 * carrying the client's address (the enclave half reads it and passes it on to the app).
 */
export async function startIngressHost(
  options: IngressHostOptions,
  { logger = silentLogger }: Context = {},
): Promise<Tunnel> {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionsError('startIngressHost() needs { listenPort, enclaveCid }')
  const listenPort = integer('listenPort', options.listenPort, 0, 65535)
  const enclaveCid = integer('enclaveCid', options.enclaveCid, 3, 0xfffffffe)
  const listenHost = options.listenHost ?? DEFAULTS.listenHost
  const target = `vsock://${enclaveCid}:${listenPort}`
  const from = listenHost.includes(':')
    ? `tcp://[${listenHost}]:${listenPort}`
    : `tcp://${listenHost}:${listenPort}`
  const to = options.proxyProtocol
    ? (inbound: import('node:net').Socket) => ({
        address: target,
        preamble: encodeProxyV2({
          ...(inbound.remoteAddress && inbound.remotePort !== undefined
            ? { source: { address: inbound.remoteAddress, port: inbound.remotePort } }
            : {}),
          ...(inbound.localAddress && inbound.localPort !== undefined
            ? { destination: { address: inbound.localAddress, port: inbound.localPort } }
            : {}),
        }),
      })
    : target
  const tunnel = await forward(
    {
      from,
      to,
      idleTimeoutMs: integer(
        'idleTimeoutMs',
        options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
        0,
        2_147_483_647,
      ),
      maxConnections: integer(
        'maxConnections',
        options.maxConnections ?? DEFAULTS.maxConnections,
        1,
        1_000_000,
      ),
      ...(options.dev === undefined ? {} : { connect: { dev: options.dev } }),
    },
    { logger: logger.child({ component: 'ingress-host', port: listenPort }) },
  )
  return tunnel
}
