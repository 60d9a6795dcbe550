/**
 * A `connect` for the KMS proxy that tunnels through an HTTP CONNECT proxy (the enclave's egress
 * proxy on 127.0.0.1:<egress.proxy_port>), which is the enclave's only way out.
 */

import { request } from 'node:http'
import type { Duplex } from 'node:stream'
import { InvalidOptionError, UpstreamFailedError } from './errors.js'

export function createEgressConnector(
  proxyUrl: string,
  options: { timeoutMs?: number } = {},
): (host: string, port: number) => Promise<Duplex> {
  let proxy: URL
  try {
    proxy = new URL(proxyUrl)
  } catch (err) {
    throw new InvalidOptionError(`proxyUrl must be an http:// URL, got ${proxyUrl}`, { cause: err })
  }
  if (proxy.protocol !== 'http:')
    throw new InvalidOptionError(`proxyUrl must be an http:// URL, got ${proxyUrl}`)
  const timeoutMs = options.timeoutMs ?? 10_000
  return (host, port) =>
    new Promise((resolve, reject) => {
      const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`
      const req = request({
        host: proxy.hostname,
        port: proxy.port || 80,
        method: 'CONNECT',
        path: authority,
        headers: { host: authority },
      })
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
      req.on('connect', (res, socket, head) => {
        req.setTimeout(0)
        if (res.statusCode !== 200) {
          socket.destroy()
          reject(
            new UpstreamFailedError(
              `the egress proxy refused CONNECT ${authority}: ${res.statusCode} ${res.statusMessage ?? ''}`.trim(),
            ),
          )
          return
        }
        if (head.length > 0) socket.unshift(head)
        resolve(socket)
      })
      req.on('error', (err) =>
        reject(
          new UpstreamFailedError(`CONNECT ${authority} through ${proxy.host} failed: ${err.message}`, {
            cause: err,
          }),
        ),
      )
      req.end()
    })
}
