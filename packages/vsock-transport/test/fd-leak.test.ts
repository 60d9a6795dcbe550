import { once } from 'node:events'
import type net from 'node:net'
import { join } from 'node:path'
import { countOpenFds, makeTempDir, waitFor } from '@enclave/test-helpers'
import { describe, expect, it } from 'vitest'
import { connect, formatAddress, listen, serverAddressOf } from '../src/index.js'

const ROUNDS = 2000

/** ROUNDS sequential connect / exchange / close; the process holds as many fds after as before. */
async function churn(address: string): Promise<void> {
  const server = await listen(address, {}, (s) => {
    s.on('error', () => {})
    s.end('x')
  })
  const dial = formatAddress(serverAddressOf(server)!)
  // Warm-up: the first connection loads lazily created resources (e.g. DNS, timers).
  for (let i = 0; i < 5; i++) {
    const s = await connect(dial)
    s.resume()
    await once(s, 'close')
  }
  const idle = () =>
    waitFor(async () => (await new Promise<number>((r) => server.getConnections((_, n) => r(n)))) === 0, {
      what: 'the server side to close',
    })
  await idle()
  const before = countOpenFds()
  for (let i = 0; i < ROUNDS; i++) {
    const socket: net.Socket = await connect(dial, { timeoutMs: 10_000 })
    socket.resume()
    await once(socket, 'close')
  }
  await idle()
  expect(countOpenFds()).toBe(before)
  await new Promise((resolve) => server.close(resolve))
}

describe('no file-descriptor leak', () => {
  it(`${ROUNDS} sequential connect/close over unix`, async () => {
    const temp = makeTempDir('vt-fd-')
    try {
      await churn(`unix://${join(temp.path, 'fd.sock')}`)
    } finally {
      temp.remove()
    }
  })

  it(`${ROUNDS} sequential connect/close over tcp`, async () => {
    await churn('tcp://127.0.0.1:0')
  })

  it('failed connects leak nothing either', async () => {
    const temp = makeTempDir('vt-fd-')
    try {
      const before = countOpenFds()
      for (let i = 0; i < 200; i++) {
        await expect(connect(`unix://${join(temp.path, 'none.sock')}`)).rejects.toMatchObject({
          code: 'ENCLAVE_VSOCK_CONNECTION_REFUSED',
        })
        await expect(connect('vsock://3:1', { dev: { dir: temp.path } })).rejects.toMatchObject({
          code: 'ENCLAVE_VSOCK_CONNECTION_REFUSED',
        })
      }
      expect(countOpenFds()).toBe(before)
    } finally {
      temp.remove()
    }
  })
})
