import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decompressModule, obtainKernel, VSOCK_MODULES } from '../lib/kernel.mjs'

let temp: { path: string; remove: () => void }
beforeEach(() => {
  temp = makeTempDir('enclave-vm-kernel-')
})
afterEach(() => temp.remove())

function cacheKernel(name: string, complete: boolean) {
  const dir = join(temp.path, 'kernel', name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'vmlinuz'), name)
  if (complete) writeFileSync(join(dir, 'complete'), `${name}\n`)
}

describe('obtainKernel', () => {
  it('takes the newest complete kernel from the cache without asking apt', async () => {
    cacheKernel('linux-image-6.1.0-9-amd64', true)
    cacheKernel('linux-image-6.1.0-56-amd64', true)
    cacheKernel('linux-image-6.1.0-60-amd64', false)
    const kernel = await obtainKernel(temp.path, { log: () => {} })
    const dir = join(temp.path, 'kernel', 'linux-image-6.1.0-56-amd64')
    expect(kernel).toEqual({
      name: 'linux-image-6.1.0-56-amd64',
      vmlinuz: join(dir, 'vmlinuz'),
      modules: VSOCK_MODULES.map((m) => join(dir, `${m}.ko`)),
      cached: true,
    })
  })
})

describe('decompressModule', () => {
  it('unpacks an xz-compressed module and moves a plain one', () => {
    const content = Buffer.from('\x7fELF pretend module '.repeat(100))
    const plain = join(temp.path, 'vsock.ko')
    writeFileSync(plain, content)
    const xz = spawnSync('xz', ['-k', plain])
    expect(xz.status).toBe(0)
    decompressModule(`${plain}.xz`, join(temp.path, 'from-xz.ko'))
    expect(readFileSync(join(temp.path, 'from-xz.ko'))).toEqual(content)
    decompressModule(plain, join(temp.path, 'moved.ko'))
    expect(readFileSync(join(temp.path, 'moved.ko'))).toEqual(content)
  })

  it('names the file it cannot decompress', () => {
    const odd = join(temp.path, 'vsock.ko.lz4')
    writeFileSync(odd, 'x')
    expect(() => decompressModule(odd, join(temp.path, 'out.ko'))).toThrow(
      /unknown module compression: .*vsock\.ko\.lz4/,
    )
  })
})
