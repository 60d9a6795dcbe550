import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

// The dev endpoint is its own entry (@enclave/kms/dev-endpoint), kept out of the main bundle.
export default defineConfig(preset({ entry: ['src/index.ts', 'src/dev-endpoint.ts'] }))
