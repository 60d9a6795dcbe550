import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

export default defineConfig(preset())
