import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

export default defineConfig(
  preset({ entry: ['src/main.ts', 'src/odyn.ts'], format: ['esm'], banner: { js: '#!/usr/bin/env node' } }),
)
