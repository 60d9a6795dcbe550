import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import { makeTempDir } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createPipelineClient,
  generateIdentity,
  isPipelineError,
  NoRootError,
  NoSpaceError,
  PathRefusedError,
  pinnedKeyVerifier,
  ServerIdentityMismatchError,
  UnauthorizedError,
} from '../src/index.js'
import { Channel } from '../src/wire.js'
import { type Fixture, startFixture, testIdentities } from './setup.js'

describe('path confinement', () => {
  let fx: Fixture
  let outside: string
  beforeAll(async () => {
    fx = await startFixture('unix')
    outside = join(fx.dir, 'outside')
    mkdirSync(outside)
    writeFileSync(join(outside, 'secret'), 'secret')
    symlinkSync(outside, join(fx.root, 'escape-dir'))
    symlinkSync(join(outside, 'secret'), join(fx.root, 'escape-file'))
    symlinkSync('../outside', join(fx.root, 'escape-rel'))
    mkdirSync(join(fx.root, 'inner'))
  })
  afterAll(() => fx.close())

  const local = () => {
    const path = join(fx.dir, 'payload')
    writeFileSync(path, 'payload')
    return path
  }

  const writes = [
    '../x',
    '../../etc/x',
    'inner/../../x',
    '/etc/pipeline-test',
    '<outside>/absolute-escape', // an absolute path outside the root, under this test's temp dir
    'escape-dir/x',
    'escape-rel/x',
    'escape-dir/new/deeper/x',
    'inner/../escape-dir/x',
    'a\0b',
    '',
  ]
  it.each(writes)('send-file refuses %j', async (path) => {
    const error = await fx
      .client()
      .sendFile(local(), path.replace('<outside>', outside))
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PathRefusedError)
    expect(readdirSync(outside)).toEqual(['secret'])
  })

  const reads = [
    '../outside/secret',
    'escape-file',
    'escape-dir/secret',
    'escape-rel/secret',
    `${'/etc'}/passwd`,
  ]
  it.each(reads)('recv-file refuses %j', async (path) => {
    const error = await fx
      .client()
      .recvFile(path, join(fx.dir, 'got'))
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PathRefusedError)
    expect(existsSync(join(fx.dir, 'got'))).toBe(false)
  })

  it.each(['../outside', 'escape-dir'])('recv-dir refuses %j', async (path) => {
    await expect(fx.client().recvDir(path, join(fx.dir, 'gotdir'))).rejects.toBeInstanceOf(PathRefusedError)
  })

  it.each(['../newdir', 'escape-dir/sub'])('send-dir refuses %j', async (path) => {
    const src = join(fx.dir, 'srcdir')
    mkdirSync(src, { recursive: true })
    writeFileSync(join(src, 'f'), 'f')
    await expect(fx.client().sendDir(src, path)).rejects.toBeInstanceOf(PathRefusedError)
    expect(readdirSync(outside)).toEqual(['secret'])
  })

  it('refuses directory entries that climb out, from a hostile sender', async () => {
    // A hand-written sender: entries are validated by the receiver, whatever the client library does.
    const [, clientIdentity] = await testIdentities()
    const socket = net.connect(fx.address.slice('unix://'.length))
    const secure = tls.connect({
      socket,
      key: clientIdentity.key,
      cert: clientIdentity.cert,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    })
    await new Promise((resolve) => secure.once('secureConnect', resolve))
    const channel = new Channel(secure, { maxChunk: 1 << 18, maxControl: 1 << 16 })
    await channel.sendControl({ type: 'send-dir', path: 'hostile' })
    expect((await channel.nextControl('ready')).type).toBe('ready')
    await channel.sendControl({ type: 'file', path: '../../outside/evil', size: 1, mode: 0o644 })
    const error = await channel.nextControl('the verdict').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PathRefusedError)
    expect(readdirSync(outside)).toEqual(['secret'])
    secure.destroy()
  })

  it('a server without roots refuses file operations', async () => {
    const bare = await startFixture('unix', { roots: [] })
    try {
      await expect(bare.client().sendFile(local(), 'x')).rejects.toBeInstanceOf(NoRootError)
    } finally {
      await bare.close()
    }
  })
})

describe('authentication', () => {
  let fx: Fixture
  beforeAll(async () => {
    fx = await startFixture('tcp')
  })
  afterAll(() => fx.close())

  it('refuses a client whose key is not authorized', async () => {
    const [serverIdentity, , stranger] = await testIdentities()
    const client = createPipelineClient({
      address: fx.address,
      identity: stranger,
      verifier: pinnedKeyVerifier([serverIdentity.fingerprint]),
    })
    const error = await client.run({ argv: ['true'] }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(UnauthorizedError)
    expect((error as Error).message).toContain(stranger.fingerprint)
    expect(fx.server.stats().refused).toBeGreaterThan(0)
  })

  it('refuses to talk to a server whose key is not the pinned one', async () => {
    const [, clientIdentity] = await testIdentities()
    const other = await generateIdentity('other')
    const client = createPipelineClient({
      address: fx.address,
      identity: clientIdentity,
      verifier: pinnedKeyVerifier([other.fingerprint]),
    })
    const error = await client.run({ argv: ['true'] }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ServerIdentityMismatchError)
  })

  it('refuses a TLS client without a certificate', async () => {
    const port = Number(fx.address.split(':').pop())
    const secure = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3' })
    await new Promise((resolve) => secure.once('secureConnect', resolve))
    const channel = new Channel(secure, { maxChunk: 1 << 18, maxControl: 1 << 16 })
    await channel.sendControl({ type: 'run', argv: ['true'] }).catch(() => undefined)
    const error = await channel.nextControl('the verdict').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(UnauthorizedError)
    secure.destroy()
  })

  it('survives plaintext garbage, and keeps serving', async () => {
    const port = Number(fx.address.split(':').pop())
    await new Promise<void>((resolve) => {
      const raw = net.connect(port, '127.0.0.1', () =>
        raw.end(Buffer.from('\x00\x00\x00\x05\x00hello garbage')),
      )
      raw.on('error', () => resolve())
      raw.on('close', () => resolve())
      raw.resume()
    })
    expect((await fx.client().run({ argv: ['true'] })).code).toBe(0)
  })
})

describe('hostile but authorized peers', () => {
  let fx: Fixture
  beforeAll(async () => {
    fx = await startFixture('unix')
  })
  afterAll(() => fx.close())

  async function session() {
    const [, clientIdentity] = await testIdentities()
    const socket = net.connect(fx.address.slice('unix://'.length))
    const secure = tls.connect({
      socket,
      key: clientIdentity.key,
      cert: clientIdentity.cert,
      rejectUnauthorized: false,
    })
    await new Promise((resolve) => secure.once('secureConnect', resolve))
    return { secure, channel: new Channel(secure, { maxChunk: 1 << 18, maxControl: 1 << 16 }) }
  }

  const cases: Array<[string, Buffer]> = [
    ['unknown request', Buffer.concat([Buffer.from([0, 0, 0, 17, 0]), Buffer.from('{"type":"nuke"} ')])],
    ['not JSON', Buffer.from([0, 0, 0, 4, 0, 0x7b, 0x7b, 0x7b])],
    ['unknown frame kind', Buffer.from([0, 0, 0, 2, 9, 1])],
    ['oversized frame', Buffer.from([0x7f, 0xff, 0xff, 0xff, 0])],
    ['empty frame', Buffer.from([0, 0, 0, 0])],
    [
      'wrong field type',
      Buffer.concat([Buffer.from([0, 0, 0, 29, 0]), Buffer.from('{"type":"recv-file","path":1}')]),
    ],
  ]
  it.each(cases)('%s ends that session with an error, not the server', async (_name, bytes) => {
    const { secure, channel } = await session()
    secure.write(bytes)
    const error = await channel.nextControl('the verdict').catch((e: unknown) => e)
    expect(isPipelineError(error)).toBe(true)
    expect((error as { remote?: boolean }).remote).toBe(true)
    secure.destroy()
    expect((await fx.client().run({ argv: ['true'] })).code).toBe(0)
  })
})

describe('a full destination filesystem', () => {
  const temp = makeTempDir('pipeline-enospc-')
  const mount = join(temp.path, 'small')
  let fx: Fixture
  let mounted = false
  beforeAll(async () => {
    mkdirSync(mount)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount])
    mounted = true
    fx = await startFixture('unix', { roots: [mount] })
  })
  afterAll(async () => {
    await fx?.close()
    if (mounted) {
      try {
        execFileSync('umount', [mount], { stdio: 'pipe' })
      } catch {
        // EBUSY (a straggling handle): detach lazily so no tmpfs outlives the run.
        execFileSync('umount', ['-l', mount], { stdio: 'pipe' })
      }
    }
    temp.remove()
  })

  it('reports ENOSPC as NoSpaceError and leaves nothing behind', async () => {
    const local = join(temp.path, 'two-mib')
    writeFileSync(local, Buffer.alloc(2 << 20, 7))
    const error = await fx
      .client()
      .sendFile(local, 'full.bin')
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(NoSpaceError)
    expect((error as Error).message).toMatch(/no space left/)
    expect(readdirSync(mount)).toEqual([])
  })
})
