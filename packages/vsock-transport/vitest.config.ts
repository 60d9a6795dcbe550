import { defineConfig } from 'vitest/config'

// Generous limits: the tests move real bytes over real sockets on a shared, loaded machine.
export default defineConfig({
  test: { name: '@enclave/vsock-transport', testTimeout: 30_000, hookTimeout: 30_000 },
})
