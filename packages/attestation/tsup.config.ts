import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

// cborg ships ESM only; bundling it keeps the CommonJS build loadable with require().
export default defineConfig(preset({ noExternal: ['cborg'] }))
