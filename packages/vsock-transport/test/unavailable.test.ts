import { constants } from 'node:os'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { unavailableFor } from '../src/native.js'

// node-gyp-build looks for the addon where <PACKAGE NAME>_PREBUILD points when it is set: pointing
// it at an empty place makes the addon fail to load, as on a machine where the build failed.
const OVERRIDE = '@ENCLAVE/VSOCK_TRANSPORT_PREBUILD'

afterEach(() => {
  vi.unstubAllEnvs()
  vi.resetModules()
})

async function freshWithoutAddon() {
  vi.stubEnv(OVERRIDE, '/nonexistent/vsock-transport-addon')
  vi.resetModules()
  return import('../src/index.js')
}

describe('without the addon', () => {
  it('vsock:// connect, listen and localCid fail with VsockUnavailableError naming the fix', async () => {
    const t = await freshWithoutAddon()
    for (const attempt of [
      () => t.connect('vsock://3:5000', { dev: false }),
      () => t.listen('vsock://any:0', { dev: false }),
      async () => t.localCid(),
    ]) {
      const err = await attempt().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(t.VsockUnavailableError)
      expect(err).toMatchObject({ code: 'ENCLAVE_VSOCK_UNAVAILABLE' })
      expect((err as Error).message).toMatch(/could not be loaded/)
      expect((err as Error).message).toMatch(/use dev mode: set ENCLAVE_VSOCK_DEV_DIR or pass \{ dev/)
      expect((err as Error).cause).toBeInstanceOf(Error)
    }
  })

  it('every other scheme, and dev-mode vsock, still work', async () => {
    const t = await freshWithoutAddon()
    const server = await t.listen('tcp://127.0.0.1:0', {}, (s) => s.end('tcp ok'))
    const socket = await t.connect(t.serverAddressOf(server)!)
    const [data] = await new Promise<Buffer[]>((resolve) => socket.once('data', (d) => resolve([d])))
    expect(String(data)).toBe('tcp ok')
    socket.destroy()
    await new Promise((resolve) => server.close(resolve))

    const temp = makeTempDir('vt-na-')
    try {
      const dev = { dir: temp.path }
      const devServer = await t.listen('vsock://any:0', { dev }, (s) => s.end('dev ok'))
      const devSocket = await t.connect(t.serverAddressOf(devServer)!, { dev })
      const [devData] = await new Promise<Buffer[]>((resolve) => devSocket.once('data', (d) => resolve([d])))
      expect(String(devData)).toBe('dev ok')
      devSocket.destroy()
      await new Promise((resolve) => devServer.close(resolve))
    } finally {
      temp.remove()
    }
  })
})

describe('a kernel without AF_VSOCK', () => {
  it('socket() failing with EAFNOSUPPORT becomes VsockUnavailableError naming the cause and the fix', () => {
    const err = unavailableFor(-constants.errno.EAFNOSUPPORT)
    expect(err).toMatchObject({ code: 'ENCLAVE_VSOCK_UNAVAILABLE', systemCode: 'EAFNOSUPPORT' })
    expect(err?.message).toMatch(
      /no AF_VSOCK support \(socket: EAFNOSUPPORT; \/dev\/vsock (exists|is missing)\)/,
    )
    expect(err?.message).toMatch(/use dev mode/)
    expect(unavailableFor(-constants.errno.EMFILE)).toBeUndefined()
  })
})
