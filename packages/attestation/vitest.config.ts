import { defineConfig } from 'vitest/config'

// Generous timeouts: the CI machine is shared, and the fuzz runs are counted, not timed.
export default defineConfig({
  test: { name: '@enclave/attestation', testTimeout: 120_000, hookTimeout: 60_000 },
})
