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
    'refuses to dial CIDs 0-3 where vsock_loopback is not loaded (they would reach the host), even with --force',
    async () => {
      // `--only nope` as well: should the guard ever break, the run stops at "unknown check" before
      // any connect, and the assertion on the refusal message fails instead of a CID being dialled.
      for (const args of [[], ['--cid', '0'], ['--cid', '2'], ['--cid', '3'], ['--force']]) {
        const result = await runCli(runner, [...args, '--only', 'nope'], {
          timeoutMs: 30_000,
          env: { ...process.env, ENCLAVE_VM_GUEST: '1' },
        })
        expect(result.code, args.join(' ')).toBe(2)
        expect(result.stderr, args.join(' ')).toMatch(
          /refusing to dial CID [0-3]: vsock_loopback is not loaded/,
        )
      }
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
