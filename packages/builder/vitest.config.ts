import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    name: '@enclave/builder',
    // Starts a private dockerd for the engine tests when none answers (see test/docker-setup.ts).
    globalSetup: ['./test/docker-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
