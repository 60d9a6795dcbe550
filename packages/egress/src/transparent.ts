import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { pipeConnection, silentLogger } from '@enclave/tunnel'
import { originalDestination } from '@enclave/vsock-transport'
import { tunnelOpener } from './client.js'
import { EgressError, InvalidOptionsError } from './errors.js'
import {
  type Context,
  type EgressTransparentOptions,
  integer,
  resolveTunnelSettings,
  TRANSPARENT_DEFAULTS,
} from './options.js'
import { compilePolicy } from './policy.js'

/** A running transparent egress listener. */
export interface TransparentEgress {
  readonly server: Server
  /** The TCP port redirected connections arrive on. */
  readonly port: number
  stats(): { active: number; total: number; refused: number }
  close(): Promise<void>
}

/**
 * Transparent TCP egress inside the enclave (enclaver #69): the app's outbound TCP connections are
 * redirected here by the kernel (`iptables -t nat -A OUTPUT -p tcp ! -d 127.0.0.0/8 -j REDIRECT
 * --to-ports <port>`), the original destination is read with SO_ORIGINAL_DST, judged by the same
 * policy (as an IP literal) and carried through the host half like a CONNECT. A refused or failed
 * connection is reset, so the app sees ECONNRESET; the log names the rule.
 */
export async function startTransparentEgress(
  options: EgressTransparentOptions,
  { logger = silentLogger }: Context = {},
): Promise<TransparentEgress> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError('startTransparentEgress() needs an options object with `policy`')
  }
  const policy = compilePolicy(options.policy)
  const port = integer('port', options.port ?? TRANSPARENT_DEFAULTS.port, 0, 65535)
  const listenHost = options.listenHost ?? TRANSPARENT_DEFAULTS.listenHost
  const settings = resolveTunnelSettings(options)
  const { idleTimeoutMs, maxConnections } = settings
  const open = tunnelOpener({ policy, ...settings })
  const log = logger.child({ component: 'egress-transparent' })
  const sockets = new Set<Socket>()
  let total = 0
  let refused = 0

  const handle = async (socket: Socket): Promise<void> => {
    const destination = originalDestination(socket)
    // A connection made straight to this port (not redirected) would loop back into itself.
    if (
      destination.port === (server.address() as AddressInfo).port &&
      destination.host === socket.localAddress
    ) {
      throw new InvalidOptionsError('connection was not redirected (no original destination)')
    }
    socket.pause()
    const { socket: upstream, rest } = await open(destination.host, destination.port)
    if (socket.destroyed) {
      upstream.destroy()
      return
    }
    if (rest.length > 0) socket.write(rest)
    await pipeConnection(socket, upstream, { idleTimeoutMs }).done
  }

  const server = createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => {})
    if (sockets.size >= maxConnections) {
      socket.resetAndDestroy()
      return
    }
    total++
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    handle(socket).catch((error: unknown) => {
      if (error instanceof EgressError && error.code === 'ENCLAVE_EGRESS_REFUSED') refused++
      log.info({ err: error, code: (error as EgressError).code }, 'transparent egress refused or failed')
      if (!socket.destroyed) socket.resetAndDestroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, listenHost, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = (server.address() as AddressInfo).port
  log.info({ port: bound }, 'transparent egress listening')
  let closing: Promise<void> | undefined
  return {
    server,
    port: bound,
    stats: () => ({ active: sockets.size, total, refused }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      })
      return closing
    },
  }
}
