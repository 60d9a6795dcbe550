import { connect as netConnect } from 'node:net'
import { makeTempDir } from '@enclave/test-helpers'
import { silentLogger } from '@enclave/tunnel'
import { afterAll, describe, expect, it } from 'vitest'
import { InvalidOptionsError, InvalidPolicyError } from '../src/errors.js'
import { egressPlugin } from '../src/plugin.js'
import { startEgressProxy } from '../src/proxy.js'

describe('egress plug-in for the supervisor', () => {
  const temp = makeTempDir('egress-plugin-')
  afterAll(() => temp.remove())
  const ctx = (manifest: unknown, signal = new AbortController().signal) => ({
    manifest,
    logger: silentLogger,
    signal,
    dev: { dir: temp.path },
  })

  it('starts nothing without egress.allow (as enclaver)', async () => {
    expect(await egressPlugin().start(ctx({}))).toBeUndefined()
    expect(await egressPlugin().start(ctx({ egress: { deny: ['x.com'] } }))).toBeUndefined()
    expect(await egressPlugin().start(ctx({ egress: { allow: [] } }))).toBeUndefined()
  })

  it('listens on egress.proxy_port and hands the app the proxy environment', async () => {
    const handle = await egressPlugin({ port: 0 }).start(
      ctx({ egress: { allow: ['example.com'], proxy_port: 10000 } }),
    )
    expect(handle).toBeDefined()
    const port = Number(new URL(handle!.env.http_proxy!).port)
    expect(handle!.env).toMatchObject({
      HTTPS_PROXY: `http://127.0.0.1:${port}/`,
      NO_PROXY: 'localhost,127.0.0.1,::1',
    })
    await new Promise<void>((resolve, reject) => {
      const s = netConnect(port, '127.0.0.1', () => {
        s.destroy()
        resolve()
      })
      s.on('error', reject)
    })
    await handle!.stop()
  })

  it('egress.transparent also starts the transparent listener; it resets a connection that was not redirected', async () => {
    const handle = await egressPlugin({ port: 0 }, { port: 0 }).start(
      ctx({ egress: { allow: ['127.0.0.2'], transparent: true } }),
    )
    expect(handle?.transparentPort).toBeGreaterThan(0)
    const port = handle!.transparentPort!
    // Reached directly (no REDIRECT rule), there is no original destination to carry: reset, no data.
    const outcome = await new Promise<{ data: string; error?: string }>((resolve) => {
      let data = ''
      const s = netConnect(port, '127.0.0.1')
      s.on('data', (c: Buffer) => {
        data += c.toString()
      })
      s.on('error', (err: NodeJS.ErrnoException) => resolve({ data, error: err.code }))
      s.on('close', () => resolve({ data }))
    })
    expect(outcome).toEqual({ data: '', error: 'ECONNRESET' })
    await handle!.stop()
    // stop() closes both listeners.
    const refused = await new Promise<string | undefined>((resolve) => {
      const s = netConnect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(undefined)
      })
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code))
    })
    expect(refused).toBe('ECONNREFUSED')
  })

  it('starts no transparent listener unless egress.transparent is true', async () => {
    const handle = await egressPlugin({ port: 0 }, { port: 0 }).start(
      ctx({ egress: { allow: ['example.com'], transparent: false } }),
    )
    expect(handle?.transparentPort).toBeUndefined()
    await handle!.stop()
  })

  it('rejects a malformed egress.transparent or egress.transparent_port naming the key', async () => {
    await expect(
      egressPlugin({ port: 0 }).start(ctx({ egress: { allow: ['x.com'], transparent: 'yes' } })),
    ).rejects.toThrow(/egress.transparent must be true or false/)
    await expect(
      egressPlugin({ port: 0 }).start(
        ctx({ egress: { allow: ['x.com'], transparent: true, transparent_port: 70000 } }),
      ),
    ).rejects.toThrow(/egress.transparent_port must be an integer from 0 to 65535/)
  })

  it('rejects an invalid policy entry and a malformed block with typed errors', async () => {
    await expect(
      egressPlugin({ port: 0 }).start(ctx({ egress: { allow: ['https://api.example.com'] } })),
    ).rejects.toThrow(InvalidPolicyError)
    await expect(egressPlugin().start(ctx({ egress: ['x'] }))).rejects.toThrow(InvalidOptionsError)
  })

  it('rejects out-of-range options naming the option', async () => {
    await expect(startEgressProxy({ policy: {}, port: 70000 })).rejects.toThrow(
      /option port must be an integer from 0 to 65535/,
    )
  })
})
