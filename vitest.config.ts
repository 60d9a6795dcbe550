import { defineConfig } from 'vitest/config'

// One run over every workspace package: each folder is a project with its own
// vitest.config.ts (or the defaults). Tests import from src, not dist.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'tooling/test-helpers', 'tooling/vm'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
