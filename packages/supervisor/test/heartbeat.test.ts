import { makeTempDir } from '@enclave/test-helpers'
import { listen } from '@enclave/vsock-transport'
import { afterAll, describe, expect, it } from 'vitest'
import { HEARTBEAT_BYTE, HeartbeatFailedError, sendBootHeartbeat } from '../src/index.js'

// Only ever against dev mode: CID 3 port 9000 here is a Unix socket in a temp dir, never the real host.
const temp = makeTempDir('odyn-hb-')
afterAll(() => temp.remove())

describe('Nitro boot heartbeat (dev-mode transport only)', () => {
  it('sends 0xB7 to CID 3 port 9000 and accepts the 0xB7 echo', async () => {
    const dev = { dir: temp.path, cid: 3 }
    const got: number[] = []
    const server = await listen('vsock://3:9000', { dev }, (socket) => {
      socket.once('data', (chunk: Buffer) => {
        got.push(...chunk)
        socket.end(Buffer.from([HEARTBEAT_BYTE]))
      })
    })
    try {
      await sendBootHeartbeat({ dev: { dir: temp.path } })
      expect(got).toEqual([0xb7])
    } finally {
      server.close()
    }
  })

  it('fails with a typed error on a wrong reply or no listener', async () => {
    const dir = makeTempDir('odyn-hb2-')
    try {
      await expect(sendBootHeartbeat({ dev: { dir: dir.path }, timeoutMs: 2000 })).rejects.toBeInstanceOf(
        HeartbeatFailedError,
      )
      const server = await listen('vsock://3:9000', { dev: { dir: dir.path, cid: 3 } }, (socket) => {
        socket.once('data', () => socket.end(Buffer.from([0x00])))
      })
      await expect(sendBootHeartbeat({ dev: { dir: dir.path } })).rejects.toThrow(/0x0 instead of 0xb7/)
      server.close()
    } finally {
      dir.remove()
    }
  })
})
