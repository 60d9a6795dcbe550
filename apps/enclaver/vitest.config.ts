import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: { name: '@enclave/enclaver-app', testTimeout: 90_000, hookTimeout: 60_000 },
})
