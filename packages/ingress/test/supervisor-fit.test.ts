import { createServer } from 'node:net'
import type { SupervisorPlugin } from '@enclave/supervisor'
import { makeTempDir } from '@enclave/test-helpers'
import { connect as vsockConnect } from '@enclave/vsock-transport'
import { describe, expect, it } from 'vitest'
import { ingressPlugin } from '../src/plugin.js'

// Compile-time guard: the factory fits @enclave/supervisor's plug-in interface.
const asPlugin: SupervisorPlugin = ingressPlugin()

describe('ingress plug-in inside the supervisor', () => {
  it('relays with a logger that has no trace level (the supervisor’s own)', async () => {
    const temp = makeTempDir('ingress-fit-')
    const logger = { child: () => logger, debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
    const app = createServer((s) => s.end('from app'))
    const appPort = await new Promise<number>((r) =>
      app.listen(0, '127.0.0.1', () => r((app.address() as { port: number }).port)),
    )
    const handle = await ingressPlugin({ appPort }).start({
      manifest: { ingress: [{ listen_port: 18090 }] },
      logger,
      signal: new AbortController().signal,
      dev: { dir: temp.path, cid: 16 },
    })
    const socket = await vsockConnect('vsock://16:18090', { dev: { dir: temp.path } })
    const data = await new Promise<string>((resolve) => {
      let d = ''
      socket.on('data', (c) => {
        d += c
      })
      socket.on('end', () => resolve(d))
    })
    socket.destroy()
    expect(asPlugin.name).toBe('ingress')
    expect(data).toBe('from app')
    await handle?.stop()
    app.close()
    temp.remove()
  })
})
