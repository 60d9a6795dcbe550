import { once } from 'node:events'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import {
  connect,
  listen,
  NoOriginalDestinationError,
  originalDestination,
  serverAddressOf,
} from '../src/index.js'

// The NAT'd case (iptables REDIRECT in a network namespace) is tested by apps/pf-proxy. Here: a
// plain loopback connection, which has no NAT entry, and sockets of the wrong kind.
async function acceptedPair(address: string): Promise<{ accepted: net.Socket; close: () => Promise<void> }> {
  let resolveAccepted: (s: net.Socket) => void = () => {}
  const accepted = new Promise<net.Socket>((resolve) => {
    resolveAccepted = resolve
  })
  const server = await listen(address, {}, resolveAccepted)
  const client = await connect(serverAddressOf(server)!)
  const socket = await accepted
  return {
    accepted: socket,
    close: async () => {
      client.destroy()
      socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

describe('originalDestination', () => {
  it.each(['tcp://127.0.0.1:0', 'tcp://[::1]:0'])(
    'on a plain (not redirected) connection to %s: NoOriginalDestinationError, or the real local address',
    async (address) => {
      const { accepted, close } = await acceptedPair(address)
      try {
        // Linux answers ENOENT when conntrack has no entry (or ENOPROTOOPT without nf_conntrack);
        // if conntrack does track this flow un-NATed, the original destination is where it went.
        let result: ReturnType<typeof originalDestination> | undefined
        try {
          result = originalDestination(accepted)
        } catch (err) {
          expect(err).toBeInstanceOf(NoOriginalDestinationError)
          expect(err).toMatchObject({ code: 'ENCLAVE_VSOCK_NO_ORIGINAL_DESTINATION' })
          expect(['ENOENT', 'ENOPROTOOPT']).toContain((err as NoOriginalDestinationError).systemCode)
        }
        if (result) {
          expect(result).toEqual({
            host: accepted.localAddress,
            port: accepted.localPort,
            family: net.isIPv6(accepted.localAddress ?? '') ? 6 : 4,
          })
        }
      } finally {
        await close()
      }
    },
  )

  it('on a Unix socket: UnsupportedSocketError', async () => {
    const server = net.createServer()
    const { makeTempDir } = await import('@enclave/test-helpers')
    const temp = makeTempDir('vt-od-')
    const path = `${temp.path}/s.sock`
    server.listen(path)
    await once(server, 'listening')
    const client = net.connect(path)
    await once(client, 'connect')
    try {
      expect(() => originalDestination(client)).toThrow(
        expect.objectContaining({ code: 'ENCLAVE_VSOCK_UNSUPPORTED_SOCKET' }),
      )
    } finally {
      client.destroy()
      await new Promise((resolve) => server.close(resolve))
      temp.remove()
    }
  })

  it('on a destroyed socket: UnsupportedSocketError', async () => {
    const { accepted, close } = await acceptedPair('tcp://127.0.0.1:0')
    await close()
    expect(() => originalDestination(accepted)).toThrow(
      expect.objectContaining({ code: 'ENCLAVE_VSOCK_UNSUPPORTED_SOCKET' }),
    )
  })
})
