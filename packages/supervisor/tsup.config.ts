import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

// shims: the CJS build needs __dirname-style paths to find the addon next to the package.
export default defineConfig(preset({ shims: true }))
