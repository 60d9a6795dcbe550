import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { describe, expect, it } from 'vitest'
import { ConfigInvalidError, ConfigUnreadableError, loadOdynConfig, parseOdynConfig } from '../src/index.js'

describe('odyn.yaml', () => {
  it('fills defaults', () => {
    const config = parseOdynConfig({ services: [{ name: 'a', command: ['x'] }] })
    expect(config.heartbeat).toBe(true)
    expect(config.services[0]).toMatchObject({ restart: 'no', restartSec: 5, enabled: true, after: [] })
  })

  it('reports every problem at once', () => {
    try {
      parseOdynConfig({
        bogus: 1,
        user: { uid: -1, gid: 0 },
        services: [
          { name: 'bad name!', command: [], restart: 'sometimes', restart_sec: -1 },
          { name: 'ok', command: ['x'], extra: 1 },
        ],
      })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigInvalidError)
      const issues = (err as ConfigInvalidError).issues.join('\n')
      for (const part of [
        'bogus',
        'user',
        'services[0].name',
        'services[0].command',
        'services[0].restart',
        'restart_sec',
        'services[1].extra',
      ])
        expect(issues).toContain(part)
    }
  })

  it('loads from the config dir; missing file = defaults; bad YAML is typed', async () => {
    const temp = makeTempDir()
    try {
      expect(await loadOdynConfig(temp.path)).toEqual({ heartbeat: true, services: [] })
      writeFileSync(join(temp.path, 'odyn.yaml'), 'user: {uid: 0, gid: 0}\nheartbeat: false\n')
      expect(await loadOdynConfig(temp.path)).toEqual({
        user: { uid: 0, gid: 0 },
        heartbeat: false,
        services: [],
      })
      writeFileSync(join(temp.path, 'odyn.yaml'), 'user: [\n')
      await expect(loadOdynConfig(temp.path)).rejects.toBeInstanceOf(ConfigUnreadableError)
      mkdirSync(join(temp.path, 'd'))
      writeFileSync(join(temp.path, 'd', 'odyn.yaml'), 'a: 1\na: 2\n')
      await expect(loadOdynConfig(join(temp.path, 'd'))).rejects.toBeInstanceOf(ConfigUnreadableError)
    } finally {
      temp.remove()
    }
  })
})
