import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

export default defineConfig(
  preset({ entry: ['src/main.ts'], format: ['esm'], dts: false, banner: { js: '#!/usr/bin/env node' } }),
)
