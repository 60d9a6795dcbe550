import { defineConfig } from 'vitest/config'

// Generous limits for a shared, loaded machine (project configs do not inherit the root's).
export default defineConfig({
  test: { name: '@enclave/protocol', testTimeout: 30_000, hookTimeout: 30_000 },
})
