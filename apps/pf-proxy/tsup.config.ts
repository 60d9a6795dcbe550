import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

// A CLI: one ESM entry with a shebang, no type declarations to publish.
export default defineConfig(
  preset({ entry: ['src/main.ts'], format: ['esm'], dts: false, banner: { js: '#!/usr/bin/env node' } }),
)
