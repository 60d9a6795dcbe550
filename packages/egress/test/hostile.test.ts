import { createServer, connect as netConnect, type Server, type Socket } from 'node:net'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { connect } from '@enclave/vsock-transport'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { InvalidHostError } from '../src/errors.js'
import { startEgressHost } from '../src/host.js'
import { checkDestination, compilePolicy, normalizeHost } from '../src/policy.js'
import { startEgressProxy } from '../src/proxy.js'
import { MessageDecoder, parseReply } from '../src/wire.js'

const temp = makeTempDir('egress-hostile-')
const dev = { dir: temp.path }
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const closed = (socket: Socket): Promise<Buffer> =>
  new Promise((resolve) => {
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => resolve(Buffer.concat(chunks)))
  })

describe('the host half against hostile enclave peers', () => {
  it('closes a connection that never sends its request', async () => {
    const host = await startEgressHost({ policy: { allow: ['**'] }, dev, requestTimeoutMs: 200 })
    cleanups.push(() => host.close())
    const socket = await connect('vsock://2:17002', { dev })
    expect((await closed(socket)).length).toBe(0)
    await waitFor(() => host.stats().active === 0, { what: 'the host to drop the silent connection' })
  })

  it('answers a malformed request with a typed error and closes', async () => {
    const host = await startEgressHost({ policy: { allow: ['**'] }, dev })
    cleanups.push(() => host.close())
    const socket = await connect('vsock://2:17002', { dev })
    const body = Buffer.from('{"host":"a.com","port":0}')
    const frame = Buffer.alloc(2)
    frame.writeUInt16LE(body.length)
    socket.write(Buffer.concat([frame, body]))
    const reply = new MessageDecoder().push(await closed(socket))
    expect(parseReply(reply?.value)).toMatchObject({ Err: { code: 'ENCLAVE_EGRESS_MALFORMED_MESSAGE' } })
  })

  it('refuses a length prefix above the bound without buffering it', async () => {
    const host = await startEgressHost({ policy: { allow: ['**'] }, dev })
    cleanups.push(() => host.close())
    const socket = await connect('vsock://2:17002', { dev })
    socket.write(Buffer.from([0xff, 0xff, 0x7b]))
    const reply = new MessageDecoder().push(await closed(socket))
    expect(parseReply(reply?.value)).toMatchObject({ Err: { code: 'ENCLAVE_EGRESS_MALFORMED_MESSAGE' } })
  })

  it('closes connections beyond maxConnections on arrival', async () => {
    const host = await startEgressHost({
      policy: { allow: ['**'] },
      dev,
      maxConnections: 2,
      requestTimeoutMs: 30_000,
    })
    cleanups.push(() => host.close())
    const held = [await connect('vsock://2:17002', { dev }), await connect('vsock://2:17002', { dev })]
    cleanups.push(() => {
      for (const s of held) s.destroy()
    })
    await waitFor(() => host.stats().active === 2, { what: 'two held connections' })
    const third = await connect('vsock://2:17002', { dev })
    expect((await closed(third)).length).toBe(0)
    expect(host.stats().total).toBe(2)
  })
})

describe('the in-enclave proxy lifecycle', () => {
  it('close() cuts open CONNECT tunnels', async () => {
    const target: Server = createServer((s) => s.on('error', () => {}))
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()))
    const port = (target.address() as { port: number }).port
    const policy = { allow: ['127.0.0.1'] }
    const host = await startEgressHost({ policy, dev })
    const proxy = await startEgressProxy({ policy, port: 0, dev })
    const client = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect(proxy.port, '127.0.0.1', () =>
        s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`),
      )
      s.once('data', (c: Buffer) =>
        c.toString().startsWith('HTTP/1.1 200') ? resolve(s) : reject(new Error(c.toString())),
      )
      s.on('error', () => {})
    })
    const gone = closed(client)
    await proxy.close()
    await gone
    expect(client.destroyed).toBe(true)
    await host.close()
    target.close()
  })
})

describe('host normalisation (fuzz)', () => {
  const policy = compilePolicy({ allow: ['0.0.0.0/0', '::/0', '**'] })

  it('throws only InvalidHostError and is idempotent', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 40 }), fc.domain(), fc.ipV4(), fc.ipV4Extended(), fc.ipV6()),
        (raw) => {
          let first: ReturnType<typeof normalizeHost>
          try {
            first = normalizeHost(raw)
          } catch (error) {
            expect(error).toBeInstanceOf(InvalidHostError)
            return
          }
          const again = normalizeHost(
            first.kind === 'ip' && first.ip.family === 6 ? `[${first.host}]` : first.host,
          )
          expect(again.host).toBe(first.host)
          expect(again.kind).toBe(first.kind)
        },
      ),
    )
  })

  it('no IPv4 notation of a loopback or metadata address passes under 0.0.0.0/0', () => {
    fc.assert(
      fc.property(fc.ipV4Extended(), (raw) => {
        let destination: ReturnType<typeof normalizeHost>
        try {
          destination = normalizeHost(raw)
        } catch {
          return
        }
        if (destination.kind !== 'ip') return
        const protectedAddress =
          /^(127\.|169\.254\.|0\.)/.test(destination.host) || destination.host === '255.255.255.255'
        expect(checkDestination(policy, destination).allowed).toBe(!protectedAddress)
      }),
      { numRuns: 2000 },
    )
  })
})
