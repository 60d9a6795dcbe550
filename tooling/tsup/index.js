/**
 * The shared tsup preset: every package ships ESM + CJS + declarations, for Node 20.19+.
 * A package's tsup.config.ts spreads this and names its entry points.
 * @param {import('tsup').Options} [overrides]
 * @returns {import('tsup').Options}
 */
export function preset(overrides = {}) {
  return {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    splitting: false,
    treeshake: true,
    ...overrides,
  }
}
