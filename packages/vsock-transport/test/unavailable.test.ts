import { constants } from 'node:os'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, listen, localCid, serverAddressOf, VsockUnavailableError } from '../src/index.js'
import { setAddonLoader, unavailableFor } from '../src/native.js'

// The addon loader is injected: it fails as node-gyp-build does on a machine where the build
// failed. listen and localCid are checked FIRST; a connect is tried only once they have shown that
// the addon is unavailable, so it cannot reach any CID (and it names none of 0-3).
let restore: (() => void) | undefined
afterEach(() => {
  restore?.()
  restore = undefined
})

function withoutAddon(): void {
  restore = setAddonLoader(() => {
    throw new Error('No native build was found for platform=linux (injected by the test)')
  })
}

function expectUnavailable(err: unknown): void {
  expect(err).toBeInstanceOf(VsockUnavailableError)
  expect(err).toMatchObject({ code: 'ENCLAVE_VSOCK_UNAVAILABLE' })
  expect((err as Error).message).toMatch(/could not be loaded/)
  expect((err as Error).message).toMatch(/No native build was found/)
  expect((err as Error).message).toMatch(/use dev mode: set ENCLAVE_VSOCK_DEV_DIR or pass \{ dev/)
  expect((err as Error).cause).toBeInstanceOf(Error)
}

describe('without the addon', () => {
  it('vsock:// localCid, listen and then connect fail with VsockUnavailableError naming the fix', async () => {
    withoutAddon()
    expectUnavailable(
      await Promise.resolve()
        .then(localCid)
        .catch((e: unknown) => e),
    )
    expectUnavailable(await listen('vsock://any:0', { dev: false }).catch((e: unknown) => e))
    // The addon is shown to be unavailable: this connect stops before any system call.
    expectUnavailable(await connect('vsock://4096:5000', { dev: false }).catch((e: unknown) => e))
  })

  it('every other scheme, and dev-mode vsock, still work', async () => {
    withoutAddon()
    expect(() => localCid()).toThrow(VsockUnavailableError)
    const server = await listen('tcp://127.0.0.1:0', {}, (s) => s.end('tcp ok'))
    const socket = await connect(serverAddressOf(server)!)
    const [data] = await new Promise<Buffer[]>((resolve) => socket.once('data', (d) => resolve([d])))
    expect(String(data)).toBe('tcp ok')
    socket.destroy()
    await new Promise((resolve) => server.close(resolve))

    const temp = makeTempDir('vt-na-')
    try {
      const dev = { dir: temp.path }
      const devServer = await listen('vsock://any:0', { dev }, (s) => s.end('dev ok'))
      const devSocket = await connect(serverAddressOf(devServer)!, { dev })
      const [devData] = await new Promise<Buffer[]>((resolve) => devSocket.once('data', (d) => resolve([d])))
      expect(String(devData)).toBe('dev ok')
      devSocket.destroy()
      await new Promise((resolve) => devServer.close(resolve))
    } finally {
      temp.remove()
    }
  })

  it('restoring the loader brings the real addon back', () => {
    withoutAddon()
    expect(() => localCid()).toThrow(VsockUnavailableError)
    restore?.()
    restore = undefined
    // Loading may still fail on a machine without a build, but not with the injected error.
    const err = (() => {
      try {
        localCid()
        return undefined
      } catch (e) {
        return e as Error
      }
    })()
    expect(err?.message ?? '').not.toMatch(/injected by the test/)
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
