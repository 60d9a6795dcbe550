import { defineConfig } from 'vitest/config'

// Unit tests of run.mjs's pure parts and the guest runner; the guest suites in test/guest run only
// inside the VM (pnpm test:vm).
export default defineConfig({ test: { name: '@enclave/vm-tests', include: ['test/*.test.ts'] } })
