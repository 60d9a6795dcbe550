import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, statSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { connect, devSocketPath, listen, peerAddressOf, serverAddressOf } from '../src/index.js'

let temp: ReturnType<typeof makeTempDir>
const closers: (() => Promise<unknown>)[] = []
beforeEach(() => {
  temp = makeTempDir('vt-dev-')
})
afterEach(async () => {
  vi.unstubAllEnvs()
  await Promise.all(closers.splice(0).map((close) => close()))
  temp.remove()
})
/** A connection handler that tolerates resets from peers the test drops on purpose. */
const quiet = (fn: (s: net.Socket) => void) => (s: net.Socket) => {
  s.on('error', () => {})
  fn(s)
}
function track<T extends net.Server | net.Socket>(x: T): T {
  closers.push(
    () => new Promise((resolve) => (x instanceof net.Server ? x.close(resolve) : resolve(x.destroy()))),
  )
  return x
}

describe('dev mode', () => {
  it('vsock://C:P is the Unix socket <dir>/<C>_<P>.sock', async () => {
    const dev = { dir: temp.path }
    const server = track(
      await listen(
        'vsock://16:5005',
        { dev },
        quiet((s) => s.end('hi')),
      ),
    )
    expect(existsSync(join(temp.path, '16_5005.sock'))).toBe(true)
    expect(devSocketPath({ dir: temp.path, cid: 3 }, 16, 5005)).toBe(join(temp.path, '16_5005.sock'))
    expect(serverAddressOf(server)).toEqual({ scheme: 'vsock', cid: 16, port: 5005 })
    expect(server.address()).toEqual({ address: '16', family: 'vsock', port: 5005, cid: 16 })
    const socket = track(await connect('vsock://16:5005', { dev }))
    expect(peerAddressOf(socket)).toEqual({ scheme: 'vsock', cid: 16, port: 5005 })
  })

  it('listen on any uses the dev CID (default 3); dialling the host (CID 2) reaches the parent (3)', async () => {
    const dev = { dir: temp.path }
    const server = track(
      await listen(
        'vsock://any:7000',
        { dev },
        quiet((s) => s.end('parent')),
      ),
    )
    expect(serverAddressOf(server)).toEqual({ scheme: 'vsock', cid: 3, port: 7000 })
    const socket = track(await connect('vsock://host:7000', { dev }))
    const [data] = await Promise.all([new Promise((resolve) => socket.once('data', resolve))])
    expect(String(data)).toBe('parent')
    expect(peerAddressOf(socket)).toEqual({ scheme: 'vsock', cid: 2, port: 7000 })
  })

  it('ENCLAVE_VSOCK_DEV_DIR and ENCLAVE_VSOCK_DEV_CID turn dev mode on; { dev: false } turns it off', async () => {
    vi.stubEnv('ENCLAVE_VSOCK_DEV_DIR', temp.path)
    vi.stubEnv('ENCLAVE_VSOCK_DEV_CID', '21')
    const server = track(
      await listen(
        'vsock://any:0',
        {},
        quiet((s) => s.end()),
      ),
    )
    const { port } = server.address() as net.AddressInfo
    expect(existsSync(join(temp.path, `21_${port}.sock`))).toBe(true)
    track(await connect(`vsock://21:${port}`))
    // dev: false means real vsock: connect to any CID is refused before a system call.
    await expect(connect('vsock://any:1', { dev: false })).rejects.toMatchObject({
      code: 'ENCLAVE_VSOCK_INVALID_ADDRESS',
    })
  })

  it('bad dev settings are InvalidOptionError naming the setting', async () => {
    vi.stubEnv('ENCLAVE_VSOCK_DEV_DIR', 'relative/dir')
    await expect(connect('vsock://3:1')).rejects.toThrow(/ENCLAVE_VSOCK_DEV_DIR must be an absolute path/)
    vi.stubEnv('ENCLAVE_VSOCK_DEV_DIR', temp.path)
    vi.stubEnv('ENCLAVE_VSOCK_DEV_CID', 'parent')
    await expect(connect('vsock://3:1')).rejects.toMatchObject({ code: 'ENCLAVE_VSOCK_INVALID_OPTION' })
    await expect(listen('vsock://any:1', { dev: { dir: temp.path, cid: -1 } })).rejects.toThrow(/dev\.cid/)
  })

  it('the dev dir is created with mode 0700 when missing', async () => {
    const dir = join(temp.path, 'nested', 'dev')
    track(await listen('vsock://any:0', { dev: { dir } }))
    expect(statSync(dir).mode & 0o777).toBe(0o700)
  })

  it('nothing listening: ConnectionRefusedError whose message names the socket path', async () => {
    const err = await connect('vsock://9:1234', { dev: { dir: temp.path } }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ENCLAVE_VSOCK_CONNECTION_REFUSED', systemCode: 'ENOENT' })
    expect((err as Error).message).toContain(join(temp.path, '9_1234.sock'))
  })

  it('a stale socket file from a dead process is replaced; a live listener is not', async () => {
    const dev = { dir: temp.path }
    const path = join(temp.path, '3_4000.sock')
    // A process that listened there and was killed leaves its socket file behind.
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)})`,
    ])
    await waitFor(() => existsSync(path), { what: 'the child to listen' })
    child.kill('SIGKILL')
    await once(child, 'exit')
    expect(existsSync(path)).toBe(true)
    await expect(connect('vsock://3:4000', { dev })).rejects.toMatchObject({ systemCode: 'ECONNREFUSED' })
    const server = track(await listen('vsock://any:4000', { dev }))
    await expect(listen('vsock://any:4000', { dev })).rejects.toMatchObject({
      code: 'ENCLAVE_VSOCK_ADDRESS_IN_USE',
    })
    expect(server.listening).toBe(true)
  })
})
