import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runCli } from '@enclave/test-helpers'
import { describe, expect, it } from 'vitest'

// examples/pf-proxy-demo runs the BUILT bin (ip-to-vsock + vsock-to-ip in dev mode around an echo
// server); running it here keeps it from rotting.
const demo = fileURLToPath(new URL('../../../examples/pf-proxy-demo/demo.mjs', import.meta.url))
const SIZES = [11, 64 * 1024, 1024 * 1024, 8 * 1024 * 1024]
const TOTAL = SIZES.reduce((sum, size) => sum + size, 0)

describe('examples/pf-proxy-demo', () => {
  it('exits 0 and prints every byte count', async () => {
    const result = await runCli(demo, [], { timeoutMs: 90_000, cwd: dirname(demo) })
    expect(result.code, result.stdout + result.stderr).toBe(0)
    for (const [i, size] of SIZES.entries()) {
      expect(result.stdout).toMatch(new RegExp(`^${i + 1}\\s+${size}\\s+${size}\\s+true$`, 'm'))
    }
    expect(result.stdout).toContain(`moved ${TOTAL} B each way over ${SIZES.length} connections`)
    for (const tool of ['ip-to-vsock', 'vsock-to-ip']) {
      expect(result.stdout).toMatch(
        new RegExp(`^${tool}\\s+connections 4 \\(errors 0\\), bytes in ${TOTAL}, bytes out ${TOTAL}$`, 'm'),
      )
    }
  }, 120_000)
})
