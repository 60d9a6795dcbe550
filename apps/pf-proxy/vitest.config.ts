import { defineConfig } from 'vitest/config'

// Tests spawn the built bin: run `pnpm --filter @enclave/pf-proxy build` first.
export default defineConfig({ test: { name: '@enclave/pf-proxy', testTimeout: 30_000, hookTimeout: 30_000 } })
