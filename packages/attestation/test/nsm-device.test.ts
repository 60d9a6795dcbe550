import { constants as osConstants } from 'node:os'
import { describe, expect, it } from 'vitest'
import {
  createNsmClient,
  InvalidOptionError,
  NsmInternalError,
  NsmUnavailableError,
  openNsmDevice,
} from '../src/index.js'
import { loadAddon, type NsmAddon, openNsmDeviceWith } from '../src/nsm-device.js'

// The ioctl itself only answers inside a Nitro enclave. Here the same addon and code path run
// against devices that refuse it, which proves the system calls and the error mapping.
describe('NSM device (/dev/nsm through the addon)', () => {
  it('is NsmUnavailableError outside an enclave', () => {
    expect(() => openNsmDevice({ path: '/nonexistent/nsm' })).toThrow(NsmUnavailableError)
    expect(() => openNsmDevice({ path: '/nonexistent/nsm' })).toThrow(/not inside a Nitro enclave/)
  })

  it('runs the real ioctl through the addon and maps the errno (ENOTTY on /dev/null)', async () => {
    const transport = openNsmDevice({ path: '/dev/null' })
    const nsm = createNsmClient(transport)
    const error = await nsm.getRandom().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(NsmInternalError)
    expect((error as Error).message).toMatch(/ENOTTY/)
    await nsm.close()
    await expect(transport.call(new Uint8Array([0x60]))).rejects.toBeInstanceOf(NsmUnavailableError)
  })

  it('refuses to open a folder', () => {
    expect(() => openNsmDevice({ path: '/tmp' })).toThrow(/EISDIR/)
  })

  it('refuses a path of PATH_MAX bytes or more, in JavaScript and in the addon (no truncation)', () => {
    // 4096 bytes whose first 4095 name /dev/null: a truncating addon would open /dev/null
    const long = `${'/'.repeat(4087)}dev/nullX`
    expect(Buffer.byteLength(long)).toBe(4096)
    expect(() => openNsmDevice({ path: long })).toThrow(InvalidOptionError)
    const addon = loadAddon()
    expect(addon.open(long)).toBe(-osConstants.errno.ENAMETOOLONG)
    const fd = addon.open(long.slice(0, 4095))
    expect(fd).toBeGreaterThanOrEqual(0)
    expect(addon.close(fd as number)).toBe(0)
  })

  it('the addon answers bad arguments with -EINVAL, never undefined or a throw', () => {
    const addon = loadAddon() as unknown as Record<string, (...args: unknown[]) => unknown>
    const EINVAL = -osConstants.errno.EINVAL
    expect(addon.open!(42)).toBe(EINVAL)
    expect(addon.open!()).toBe(EINVAL)
    expect(addon.close!('x')).toBe(EINVAL)
    expect(addon.call!(0, 'not a buffer', Buffer.alloc(1), () => {})).toBe(EINVAL)
    expect(addon.call!(0, Buffer.alloc(1), Buffer.alloc(1), 'not a function')).toBe(EINVAL)
    expect(addon.call!(0, Buffer.alloc(1))).toBe(EINVAL)
  })
})

describe('NSM device transport contract (an injected addon)', () => {
  const stub = (call: NsmAddon['call']): NsmAddon & { closed: number[] } => {
    const closed: number[] = []
    return { open: () => 7, call, close: (fd) => closed.push(fd), closed }
  }

  it('settles the call when the addon returns a non-number or a negative number', async () => {
    for (const queued of [undefined, null, 'x', -22]) {
      const transport = openNsmDeviceWith(
        stub(() => queued),
        '/dev/nsm',
        1000,
      )
      const err = await transport.call(new Uint8Array([0x60])).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(NsmInternalError)
      expect((err as Error).message).toMatch(/could not be queued/)
      // nothing is left in flight: close() returns at once
      await transport.close()
    }
  })

  it('an open that returns a non-number is NsmUnavailableError', () => {
    expect(() => openNsmDeviceWith({ ...stub(() => 0), open: () => undefined }, '/dev/nsm', 1000)).toThrow(
      NsmUnavailableError,
    )
  })

  it('close() waits for a call in flight, then closes; gives up with a typed error after its timeout', async () => {
    let finish: ((r: number) => void) | undefined
    const addon = stub((_fd, _req, res, cb) => {
      finish = (r) => {
        res[0] = 0x60
        cb(r)
      }
      return 0
    })
    const transport = openNsmDeviceWith(addon, '/dev/nsm', 10_000)
    const pending = transport.call(new Uint8Array([0x60]))
    const closing = transport.close()
    finish!(1)
    expect(await pending).toEqual(new Uint8Array([0x60]))
    await closing
    expect(addon.closed).toEqual([7])

    const stuck = stub(() => 0) // the callback never runs
    const t2 = openNsmDeviceWith(stuck, '/dev/nsm', 50)
    void t2.call(new Uint8Array([0x60]))
    const err = await t2.close().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(NsmInternalError)
    expect((err as Error).message).toMatch(/still in flight after 50 ms/)
    expect(stuck.closed).toEqual([])
  })

  it('refuses a bad closeTimeoutMs', () => {
    expect(() => openNsmDevice({ path: '/dev/null', closeTimeoutMs: 0 })).toThrow(InvalidOptionError)
  })
})
