import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { forward } from '../src/index.js'

describe('tunnel address', () => {
  it('reports the port the kernel chose for tcp port 0', async () => {
    const tunnel = await forward({ from: 'tcp://127.0.0.1:0', to: 'tcp://127.0.0.1:9' })
    try {
      expect(tunnel.address).toMatch(/^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/)
    } finally {
      await tunnel.close()
    }
  })

  // Binding a vsock listener is safe here (no connect); the machine has /dev/vsock.
  it.runIf(existsSync('/dev/vsock'))('reports the port the kernel chose for vsock port 0', async () => {
    const tunnel = await forward({ from: 'vsock://any:0', to: 'tcp://127.0.0.1:9' })
    try {
      expect(tunnel.address).toMatch(/^vsock:\/\/any:[1-9]\d*$/)
    } finally {
      await tunnel.close()
    }
  })
})
