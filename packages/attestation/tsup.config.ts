import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

// CBOR comes through @enclave/cose, whose build bundles the ESM-only cborg, so `require()` of this
// package's CommonJS output works on Node 20.19+.
export default defineConfig(preset())
