import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import type net from 'node:net'
import { countOpenFds } from '@enclave/test-helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, listen, localCid, serverAddressOf, VMADDR_CID_ANY } from '../src/index.js'

// This machine has AF_VSOCK but no loopback transport: only bind/listen are tested here, and NO
// vsock connect is ever dialled (CIDs 1, 2 and 3 reach the real host). The errno → typed error
// mapping is unit-tested in errors.test.ts; real connects, refused (ECONNRESET) and unreachable
// (ENODEV) included, run in the QEMU guest (test/guest/run-vsock-guest.mjs, pnpm test:vm).
const hasVsock = existsSync('/dev/vsock')

const servers: net.Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))))
})

/** The local CID as the kernel reports it, read with Python's ioctl, independent of the addon. */
function pythonLocalCid(): number | undefined {
  try {
    const out = execFileSync(
      'python3',
      [
        '-c',
        'import fcntl,struct\nwith open("/dev/vsock","rb") as f: print(struct.unpack("I", fcntl.ioctl(f, 0x7b9, b"\\0"*4))[0])',
      ],
      { encoding: 'utf8', timeout: 10_000 },
    )
    return Number(out.trim())
  } catch {
    return undefined
  }
}

describe.runIf(hasVsock)('AF_VSOCK on this kernel', () => {
  it('listen("vsock://any:PORT") binds and listens; address() and serverAddressOf report the port', async () => {
    const server = await listen('vsock://any:0')
    servers.push(server)
    expect(server.listening).toBe(true)
    const info = server.address() as net.AddressInfo & { cid: number }
    expect(info.family).toBe('vsock')
    expect(info.cid).toBe(VMADDR_CID_ANY)
    expect(info.port).toBeGreaterThan(1023)
    expect(serverAddressOf(server)).toEqual({ scheme: 'vsock', cid: VMADDR_CID_ANY, port: info.port })
  })

  it('a second listen on the same port is AddressInUseError; close frees the port to be bound again', async () => {
    const first = await listen('vsock://any:0')
    const { port } = first.address() as net.AddressInfo
    const second = listen(`vsock://any:${port}`)
    await expect(second).rejects.toMatchObject({
      name: 'AddressInUseError',
      code: 'ENCLAVE_VSOCK_ADDRESS_IN_USE',
      systemCode: 'EADDRINUSE',
    })
    await new Promise((resolve) => first.close(resolve))
    expect(first.listening).toBe(false)
    const again = await listen(`vsock://any:${port}`)
    servers.push(again)
    expect((again.address() as net.AddressInfo).port).toBe(port)
  })

  it('listen on a fixed port reports that port', async () => {
    // A high fixed port, unlikely to be taken; retried once on the rare collision.
    let port = 0x7e000000 + Math.floor(Math.random() * 0xffff)
    let server: net.Server
    try {
      server = await listen(`vsock://any:${port}`)
    } catch {
      port += 1
      server = await listen(`vsock://any:${port}`)
    }
    servers.push(server)
    expect(serverAddressOf(server)).toEqual({ scheme: 'vsock', cid: VMADDR_CID_ANY, port })
  })

  it('listen with an aborted signal rejects with AbortError and leaves no socket bound', async () => {
    await expect(listen('vsock://any:0', { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: 'ENCLAVE_VSOCK_ABORTED',
    })
  })

  it('listen on a CID that is not this machine is a ListenError (EADDRNOTAVAIL)', async () => {
    await expect(listen('vsock://12345:0')).rejects.toMatchObject({
      code: 'ENCLAVE_VSOCK_LISTEN_FAILED',
      systemCode: 'EADDRNOTAVAIL',
    })
  })

  it('localCid() is what /dev/vsock reports, a number above 2, and stable', () => {
    const cid = localCid()
    expect(Number.isInteger(cid)).toBe(true)
    expect(cid).toBeGreaterThan(2)
    expect(localCid()).toBe(cid)
    const fromPython = pythonLocalCid()
    if (fromPython !== undefined) expect(cid).toBe(fromPython)
  })

  it('200 listen/close cycles leave no file descriptor behind', async () => {
    const before = countOpenFds()
    for (let i = 0; i < 200; i++) {
      const server = await listen('vsock://any:0')
      await new Promise((resolve) => server.close(resolve))
    }
    expect(countOpenFds()).toBe(before)
  })

  it('connect to CID any is an InvalidAddressError before any system call', async () => {
    await expect(connect('vsock://any:5000')).rejects.toMatchObject({ code: 'ENCLAVE_VSOCK_INVALID_ADDRESS' })
  })
})
