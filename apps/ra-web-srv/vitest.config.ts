import { defineConfig } from 'vitest/config'

export default defineConfig({ test: { name: '@enclave/ra-web-srv', testTimeout: 60_000 } })
