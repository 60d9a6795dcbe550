import { existsSync, lutimesSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { createPipelineServer, InvalidOptionError } from '../src/index.js'
import { type Fixture, startFixture, testIdentities } from './setup.js'

const STALE = '.pipeline-0123456789abcdef.tmp'
const TWO_HOURS_AGO = new Date(Date.now() - 2 * 3600_000)

describe('start-up sweep of upload temp files left by a killed server', () => {
  let temp: ReturnType<typeof makeTempDir> | undefined
  let fx: Fixture | undefined
  afterEach(async () => {
    await fx?.close()
    fx = undefined
    temp?.remove()
    temp = undefined
  })

  /** Writes `path` and backdates it (a symlink is backdated itself, not its target). */
  const file = (path: string, when = TWO_HOURS_AGO) => {
    writeFileSync(path, 'partial upload')
    utimesSync(path, when, when)
    return path
  }

  it('removes only stale files of the exact temp pattern, never symlinks, fresh files or outside paths', async () => {
    temp = makeTempDir('pipeline-sweep-')
    const root = join(temp.path, 'root')
    const outside = join(temp.path, 'outside')
    mkdirSync(join(root, 'a', 'b'), { recursive: true })
    mkdirSync(outside)
    const gone = [file(join(root, STALE)), file(join(root, 'a', 'b', '.pipeline-fedcba9876543210.tmp'))]
    const kept = [
      file(join(root, '.pipeline-1111111111111111.tmp'), new Date()), // fresh: maybe a live upload
      file(join(root, '.pipeline-short.tmp')), // not the exact pattern
      file(join(root, '.pipeline-0123456789ABCDEF.tmp')), // upper-case hex is not ours
      file(join(root, 'a', 'data.tmp')),
      file(join(root, 'a', `${STALE}.bak`)),
      file(join(outside, STALE)), // reachable only through symlinks below
    ]
    mkdirSync(join(root, 'a', '.pipeline-2222222222222222.tmp')) // a folder with the name: not a file
    kept.push(join(root, 'a', '.pipeline-2222222222222222.tmp'))
    symlinkSync(outside, join(root, 'link-to-outside'))
    const link = join(root, '.pipeline-3333333333333333.tmp')
    symlinkSync(join(outside, STALE), link)
    lutimesSync(link, TWO_HOURS_AGO, TWO_HOURS_AGO)
    kept.push(link)

    fx = await startFixture('unix', { roots: [root] })
    for (const path of gone) expect(existsSync(path), path).toBe(false)
    for (const path of kept) expect(existsSync(path), path).toBe(true)
    // The server still works on the swept root.
    const local = join(temp.path, 'payload')
    writeFileSync(local, 'payload')
    await fx.client().sendFile(local, 'a/b/arrived')
    expect(existsSync(join(root, 'a', 'b', 'arrived'))).toBe(true)
  })

  it('waits at least twice idleTimeoutMs, and staleTempMs: 0 turns the sweep off', async () => {
    temp = makeTempDir('pipeline-sweep-')
    const root = join(temp.path, 'root')
    mkdirSync(root)
    const stale = file(join(root, STALE))
    // Two hours old, but a 90-minute idle timeout means an upload may still be alive.
    fx = await startFixture('unix', { roots: [root], staleTempMs: 60_000, idleTimeoutMs: 90 * 60_000 })
    expect(existsSync(stale)).toBe(true)
    await fx.close()
    fx = undefined
    fx = await startFixture('unix', { roots: [root], staleTempMs: 0 })
    expect(existsSync(stale)).toBe(true)
    await fx.close()
    fx = undefined
    fx = await startFixture('unix', { roots: [root], staleTempMs: 60_000 })
    expect(existsSync(stale)).toBe(false)
    const [identity] = await testIdentities()
    await expect(
      createPipelineServer({ address: 'tcp://127.0.0.1:0', identity, authorizedKeys: [], staleTempMs: -1 }),
    ).rejects.toBeInstanceOf(InvalidOptionError)
  })
})
