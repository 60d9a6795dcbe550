import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { countOpenFds, makeTempDir, runCli, waitFor } from '../src/index.js'

describe('test helpers', () => {
  it('makeTempDir creates and removes a folder', () => {
    const dir = makeTempDir()
    expect(existsSync(dir.path)).toBe(true)
    dir.remove()
    expect(existsSync(dir.path)).toBe(false)
  })

  it('countOpenFds sees stdio at least', () => {
    expect(countOpenFds()).toBeGreaterThanOrEqual(3)
  })

  it('runCli reports output and exit code', async () => {
    const result = await runCli('-e', [
      'process.stdout.write("out"); process.stderr.write("err"); process.exit(4)',
    ])
    expect(result).toMatchObject({ code: 4, stdout: 'out', stderr: 'err' })
  })

  it('waitFor throws with the name of what it waited for', async () => {
    await expect(waitFor(() => false, { timeoutMs: 50, what: 'nothing' })).rejects.toThrow(/nothing/)
  })
})
