import { createHmac, randomBytes } from 'node:crypto'
import { waitFor } from '@enclave/test-helpers'
import { connect } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import { ControlError, connectControl, parseOdynConfig } from '../src/index.js'
import { type Harness, harness } from './helpers.js'

let current: Harness | undefined
afterEach(async () => {
  await current?.cleanup()
  current = undefined
})

const key = randomBytes(32)
const address = 'vsock://16:9001'

async function start(): Promise<Harness> {
  const config = parseOdynConfig({ services: [{ name: 'web', command: ['sleep', '60'] }] })
  current = harness({ command: ['sleep', '60'], user: null, config, control: { key } })
  await current.odyn.start()
  return current
}

describe('control interface (mutually authenticated)', () => {
  it('an authenticated client lists, stops and starts services', async () => {
    const h = await start()
    const client = await connectControl(address, key, { dev: h.dev })
    const list = await client.request({ op: 'list' })
    expect(list.ok && list.services?.map((s) => [s.name, s.state])).toEqual([['web', 'running']])
    const stopped = await client.request({ op: 'stop', name: 'web' })
    expect(stopped.ok && stopped.service?.state).toBe('stopped')
    const started = await client.request({ op: 'start', name: 'web' })
    expect(started.ok && started.service?.state).toBe('running')
    expect(await client.request({ op: 'status', name: 'ghost' })).toEqual({
      ok: false,
      error: 'no service named "ghost"',
    })
    client.close()
  })

  it('refuses a client with the wrong key, and the client refuses a server with the wrong key', async () => {
    const h = await start()
    await expect(connectControl(address, randomBytes(32), { dev: h.dev })).rejects.toThrow(
      /refused us: unauthenticated/,
    )
    expect(h.odyn.services.list()[0]?.state).toBe('running')
  })

  it('refuses an unauthenticated raw request and a tampered or replayed message', async () => {
    const h = await start()
    // A client that skips the handshake and sends a command.
    const raw = await connect(address, { dev: h.dev })
    let got = ''
    raw.on('data', (c: Buffer) => {
      got += c.toString()
    })
    raw.write('{"op":"stop","name":"web"}\n')
    await new Promise((r) => raw.once('close', r))
    expect(got).toContain('"error":"unauthenticated"')
    expect(h.odyn.services.list()[0]?.state).toBe('running')
  })

  it('ends the session on a replayed or tampered message (a relaying host cannot inject commands)', async () => {
    const h = await start()
    const hmac = (k: Buffer, ...parts: (string | Buffer)[]) => {
      const m = createHmac('sha256', k)
      for (const p of parts) m.update(p)
      return m.digest()
    }
    const handshake = async () => {
      const socket = await connect(address, { dev: h.dev })
      const lines: string[] = []
      let buf = ''
      socket.on('data', (c: Buffer) => {
        buf += c.toString()
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          lines.push(buf.slice(0, i))
          buf = buf.slice(i + 1)
        }
      })
      const next = async () => {
        await waitFor(() => lines.length > 0, { what: 'a line' })
        return JSON.parse(lines.shift()!)
      }
      const ns = Buffer.from((await next()).nonce, 'base64')
      const nc = randomBytes(32)
      socket.write(
        `${JSON.stringify({ nonce: nc.toString('base64'), proof: hmac(key, 'client\0', ns, nc).toString('hex') })}\n`,
      )
      await next()
      const sk = hmac(key, 'session\0', ns, nc)
      const sealed = (payload: object) => {
        const p = JSON.stringify(payload)
        return `${JSON.stringify({ p, m: hmac(sk, 'c', p).toString('hex') })}\n`
      }
      return { socket, next, sealed, sk }
    }
    // Replay: the same sealed request twice.
    const a = await handshake()
    const line = a.sealed({ seq: 0, op: 'stop', name: 'web' })
    a.socket.write(line)
    expect((await a.next()).p).toContain('"ok":true')
    await h.odyn.services.start('web')
    a.socket.write(line)
    await new Promise((r) => a.socket.once('close', r))
    expect(h.odyn.services.list()[0]?.state).toBe('running')
    // Tampering: a valid MAC over a different payload.
    const b = await handshake()
    const good = JSON.parse(b.sealed({ seq: 0, op: 'list' }))
    b.socket.write(
      `${JSON.stringify({ p: JSON.stringify({ seq: 0, op: 'stop', name: 'web' }), m: good.m })}\n`,
    )
    await new Promise((r) => b.socket.once('close', r))
    expect(h.odyn.services.list()[0]?.state).toBe('running')
  })

  it('rejects short keys', async () => {
    await expect(connectControl(address, Buffer.alloc(8))).rejects.toBeInstanceOf(ControlError)
  })
})
