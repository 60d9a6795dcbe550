import { once } from 'node:events'
import net from 'node:net'
import { afterEach, expect, it } from 'vitest'
import { pipeConnection, TunnelClosedError } from '../src/index.js'

const servers: net.Server[] = []
afterEach(() => {
  for (const server of servers.splice(0)) server.close()
})

/** A connected pair of TCP sockets: [client side, server side]. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[net.Socket]>
  const client = net.connect({
    port: (server.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    allowHalfOpen: true,
  })
  client.on('error', () => {})
  const [[serverSide]] = await Promise.all([accepted, once(client, 'connect')])
  serverSide.on('error', () => {})
  return [client, serverSide]
}

it('relays a pair of sockets you already hold and reports the bytes when both close', async () => {
  const [alice, inbound] = await socketPair()
  const [outbound, bob] = await socketPair()
  const pipe = pipeConnection(inbound, outbound)
  const bobGot: Buffer[] = []
  bob.on('data', (chunk: Buffer) => bobGot.push(chunk))
  bob.on('end', () => bob.end('reply'))
  const aliceGot: Buffer[] = []
  alice.on('data', (chunk: Buffer) => aliceGot.push(chunk))
  alice.end('request')
  await once(alice, 'end')
  expect(Buffer.concat(bobGot).toString()).toBe('request')
  expect(Buffer.concat(aliceGot).toString()).toBe('reply')
  alice.destroy()
  expect(await pipe.done).toEqual({ bytesIn: 7, bytesOut: 5 })
})

it('destroy() cuts both sockets and reports the given error', async () => {
  const [alice, inbound] = await socketPair()
  const [outbound, bob] = await socketPair()
  const pipe = pipeConnection(inbound, outbound, { idleTimeoutMs: 60_000 })
  pipe.destroy(new TunnelClosedError())
  const result = await pipe.done
  expect(result.error?.code).toBe('ENCLAVE_TUNNEL_CLOSED')
  expect(inbound.destroyed && outbound.destroyed).toBe(true)
  alice.destroy()
  bob.destroy()
})

it('settles at once for a socket already destroyed, and cuts the other', async () => {
  const [alice, inbound] = await socketPair()
  const [outbound, bob] = await socketPair()
  inbound.destroy()
  const result = await pipeConnection(inbound, outbound).done
  expect(result.error?.code).toBe('ENCLAVE_TUNNEL_SOCKET_ERROR')
  expect(outbound.destroyed).toBe(true)
  alice.destroy()
  bob.destroy()
})
