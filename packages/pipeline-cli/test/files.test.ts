import { createHash, randomBytes } from 'node:crypto'
import {
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { waitFor } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AbortedError, NotFoundError, WrongTypeError } from '../src/index.js'
import { type Fixture, startFixture } from './setup.js'

async function writeRandomFile(path: string, mib: number): Promise<string> {
  const hash = createHash('sha256')
  const out = createWriteStream(path)
  for (let i = 0; i < mib; i++) {
    const chunk = randomBytes(1 << 20)
    hash.update(chunk)
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()))
  }
  await new Promise<void>((resolve, reject) => {
    out.once('error', reject)
    out.end(() => resolve())
  })
  return hash.digest('hex')
}

const sha256File = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex')
const tempFiles = (dir: string) =>
  readdirSync(dir, { recursive: true }).filter((name) => String(name).endsWith('.tmp'))

describe.each(['unix', 'tcp'] as const)('files over %s', (scheme) => {
  let fx: Fixture
  beforeAll(async () => {
    fx = await startFixture(scheme)
  })
  afterAll(() => fx.close())

  it('sends and receives a 64 MiB file, checked end to end, keeping the mode', async () => {
    const local = join(fx.dir, 'big.bin')
    const expected = await writeRandomFile(local, 64)
    const sent = await fx.client().sendFile(local, 'deep/er/big.bin')
    expect(sent).toEqual({ size: 64 << 20, sha256: expected })
    expect(sha256File(join(fx.root, 'deep/er/big.bin'))).toBe(expected)
    const back = join(fx.dir, 'back', 'big.bin')
    const received = await fx.client().recvFile('deep/er/big.bin', back)
    expect(received.sha256).toBe(expected)
    expect(sha256File(back)).toBe(expected)
    expect(tempFiles(fx.root)).toEqual([])
  }, 120_000)

  it('keeps the permission bits and replaces an existing file atomically', async () => {
    const local = join(fx.dir, 'script.sh')
    writeFileSync(local, '#!/bin/sh\necho v2\n', { mode: 0o750 })
    writeFileSync(join(fx.root, 'script.sh'), 'old')
    await fx.client().sendFile(local, 'script.sh')
    expect(readFileSync(join(fx.root, 'script.sh'), 'utf8')).toBe('#!/bin/sh\necho v2\n')
    expect(statSync(join(fx.root, 'script.sh')).mode & 0o777).toBe(0o750)
    const back = join(fx.dir, 'script-back.sh')
    await fx.client().recvFile('script.sh', back)
    expect(statSync(back).mode & 0o777).toBe(0o750)
  })

  it('sends an empty file', async () => {
    const local = join(fx.dir, 'empty')
    writeFileSync(local, '')
    await fx.client().sendFile(local, 'empty')
    expect(readFileSync(join(fx.root, 'empty')).length).toBe(0)
  })

  it('reports a missing remote file and a folder where a file is needed', async () => {
    await expect(fx.client().recvFile('nope.bin', join(fx.dir, 'nope'))).rejects.toBeInstanceOf(NotFoundError)
    mkdirSync(join(fx.root, 'adir'), { recursive: true })
    await expect(fx.client().recvFile('adir', join(fx.dir, 'adir'))).rejects.toBeInstanceOf(WrongTypeError)
    expect(existsSync(join(fx.dir, 'nope'))).toBe(false)
  })

  it('moves folders both ways with symlinks kept as links and modes kept', async () => {
    const src = join(fx.dir, 'tree')
    mkdirSync(join(src, 'a/b'), { recursive: true })
    writeFileSync(join(src, 'a/b/file.txt'), 'nested')
    writeFileSync(join(src, 'top.bin'), randomBytes(300_000))
    writeFileSync(join(src, 'exec.sh'), 'x', { mode: 0o700 })
    symlinkSync('a/b/file.txt', join(src, 'link-rel'))
    symlinkSync('/etc/passwd', join(src, 'link-abs'))
    const stats = await fx.client().sendDir(src, 'trees/one')
    expect(stats).toMatchObject({ files: 3, dirs: 2, symlinks: 2 })
    const dest = join(fx.root, 'trees/one')
    expect(readFileSync(join(dest, 'a/b/file.txt'), 'utf8')).toBe('nested')
    expect(lstatSync(join(dest, 'link-rel')).isSymbolicLink()).toBe(true)
    expect(readlinkSync(join(dest, 'link-rel'))).toBe('a/b/file.txt')
    expect(readlinkSync(join(dest, 'link-abs'))).toBe('/etc/passwd')
    expect(statSync(join(dest, 'exec.sh')).mode & 0o777).toBe(0o700)

    const back = join(fx.dir, 'tree-back')
    const again = await fx.client().recvDir('trees/one', back)
    expect(again).toMatchObject({ files: 3, dirs: 2, symlinks: 2 })
    expect(sha256File(join(back, 'top.bin'))).toBe(sha256File(join(src, 'top.bin')))
    expect(readlinkSync(join(back, 'link-abs'))).toBe('/etc/passwd')
    expect(tempFiles(back)).toEqual([])
  })

  it('serves concurrent transfers', async () => {
    const files = Array.from({ length: 6 }, (_, index) => {
      const path = join(fx.dir, `c${index}.bin`)
      writeFileSync(path, randomBytes(1 << 20))
      return path
    })
    await Promise.all(files.map((path, index) => fx.client().sendFile(path, `concurrent/c${index}.bin`)))
    const back = await Promise.all(
      files.map((_, index) =>
        fx.client().recvFile(`concurrent/c${index}.bin`, join(fx.dir, 'cback', `c${index}.bin`)),
      ),
    )
    back.forEach((result, index) => {
      expect(result.sha256).toBe(sha256File(files[index]!))
    })
  })

  it('an aborted download leaves no partial file and no temp file', async () => {
    const big = join(fx.root, 'abort.bin')
    await writeRandomFile(big, 64)
    const controller = new AbortController()
    const destination = join(fx.dir, 'aborted', 'abort.bin')
    const download = fx.client().recvFile('abort.bin', destination, {
      signal: controller.signal,
      onProgress: (done) => {
        if (done > 4 << 20) controller.abort()
      },
    })
    await expect(download).rejects.toBeInstanceOf(AbortedError)
    expect(existsSync(destination)).toBe(false)
    expect(tempFiles(join(fx.dir, 'aborted'))).toEqual([])
  }, 60_000)

  it('an aborted upload leaves no partial file and the server removes its temp file', async () => {
    const local = join(fx.dir, 'up.bin')
    await writeRandomFile(local, 64)
    const controller = new AbortController()
    const upload = fx.client().sendFile(local, 'uploads/up.bin', {
      signal: controller.signal,
      onProgress: (done) => {
        if (done > 4 << 20) controller.abort()
      },
    })
    await expect(upload).rejects.toBeInstanceOf(AbortedError)
    expect(existsSync(join(fx.root, 'uploads/up.bin'))).toBe(false)
    await waitFor(() => tempFiles(join(fx.root, 'uploads')).length === 0, {
      timeoutMs: 20_000,
      what: 'temp cleanup',
    })
  }, 60_000)
})

describe('a stalled upload', () => {
  let fx: Fixture
  beforeAll(async () => {
    fx = await startFixture('unix', { idleTimeoutMs: 300 })
  })
  afterAll(() => fx.close())

  it('is cut after idleTimeoutMs and its temp file removed, and the server keeps serving', async () => {
    const { testIdentities } = await import('./setup.js')
    const [, clientIdentity] = await testIdentities()
    const net = await import('node:net')
    const tls = await import('node:tls')
    const { Channel } = await import('../src/wire.js')
    const socket = net.connect(fx.address.slice('unix://'.length))
    const secure = tls.connect({
      socket,
      key: clientIdentity.key,
      cert: clientIdentity.cert,
      rejectUnauthorized: false,
    })
    await new Promise((resolve) => secure.once('secureConnect', resolve))
    const channel = new Channel(secure, { maxChunk: 1 << 18, maxControl: 1 << 16 })
    await channel.sendControl({ type: 'send-file', path: 'stalled.bin', size: 10, mode: 0o644 })
    expect((await channel.nextControl('ready')).type).toBe('ready')
    await channel.sendData('file', Buffer.from('12345'))
    await new Promise((resolve) => secure.once('close', resolve))
    await waitFor(() => tempFiles(fx.root).length === 0, { timeoutMs: 20_000, what: 'temp cleanup' })
    expect(existsSync(join(fx.root, 'stalled.bin'))).toBe(false)
    expect(fx.server.stats().active).toBe(0)
  })
})
