import { describe, expect, it } from 'vitest'
import { createNsmClient, NsmInternalError, NsmUnavailableError, openNsmDevice } from '../src/index.js'

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
})
