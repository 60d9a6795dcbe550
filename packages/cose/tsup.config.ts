import { preset } from '@enclave/tsup-config'
import { defineConfig } from 'tsup'

// cborg ships ESM only with an `import`-only exports map, so `require()` cannot load it even on
// Node 20.19+: bundle it into both outputs instead of leaving it external.
export default defineConfig(preset({ noExternal: ['cborg'] }))
