import { defineConfig } from 'vitest/config'

// Generous timeouts: the machine is shared and these tests fsync files and spawn openssl/python3.
export default defineConfig({ test: { name: '@enclave/eif', testTimeout: 30_000, hookTimeout: 30_000 } })
