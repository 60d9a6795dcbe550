import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { makeTempDir, runCli } from '@enclave/test-helpers'
import { describe, expect, it } from 'vitest'

// The QEMU guest runs test/guest/run-vsock-guest.mjs over real vsock (pnpm test:vm). Here the same
// runner runs in dev mode against the built dist, so a broken runner shows up without a VM.
const runner = fileURLToPath(new URL('./guest/run-vsock-guest.mjs', import.meta.url))
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url))

describe('guest runner', () => {
  it('passes every check in dev mode (built dist)', async () => {
    expect(existsSync(dist), 'build first: pnpm --filter @enclave/vsock-transport build').toBe(true)
    const temp = makeTempDir('vt-runner-')
    try {
      const result = await runCli(runner, ['--dev', temp.path, '--cid', '7'], { timeoutMs: 60_000 })
      expect(result.stdout).toMatch(/^# (\d+)\/\1 passed over dev-mode vsock/m)
      expect(result.code, result.stdout + result.stderr).toBe(0)
    } finally {
      temp.remove()
    }
  })

  it.skipIf(existsSync('/sys/module/vsock_loopback'))(
    'refuses to dial CID 1 where vsock_loopback is not loaded (it would reach the host)',
    async () => {
      const result = await runCli(runner, [], { timeoutMs: 30_000 })
      expect(result.code).toBe(2)
      expect(result.stderr).toMatch(/vsock_loopback is not loaded/)
    },
  )

  it('rejects unknown checks and bad arguments with exit code 2', async () => {
    const temp = makeTempDir('vt-runner-')
    try {
      const unknown = await runCli(runner, ['--dev', temp.path, '--only', 'nope'])
      expect(unknown.code).toBe(2)
      expect(unknown.stderr).toMatch(/unknown check nope/)
      const bad = await runCli(runner, ['--cid', 'x'])
      expect(bad.code).toBe(2)
    } finally {
      temp.remove()
    }
  })
})
