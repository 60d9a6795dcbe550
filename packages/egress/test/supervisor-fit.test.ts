import type { SupervisorPlugin } from '@enclave/supervisor'
import { makeTempDir } from '@enclave/test-helpers'
import { describe, expect, it } from 'vitest'
import { egressPlugin } from '../src/plugin.js'

// Compile-time guard: the factory fits @enclave/supervisor's plug-in interface.
const asPlugin: SupervisorPlugin = egressPlugin()

describe('egress plug-in inside the supervisor', () => {
  it('runs with a logger that has no trace level (the supervisor’s own)', async () => {
    const temp = makeTempDir('egress-fit-')
    const lines: string[] = []
    const logger = {
      child: () => logger,
      debug: () => {},
      info: (_o: object, m?: string) => lines.push(m ?? ''),
      warn: () => {},
      error: () => {},
    }
    const handle = await egressPlugin({ port: 0 }).start({
      manifest: { egress: { allow: ['example.com'] } },
      logger,
      signal: new AbortController().signal,
      dev: { dir: temp.path },
    })
    expect(asPlugin.name).toBe('egress')
    expect(handle?.env.http_proxy).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    expect(lines).toContain('egress proxy listening')
    await handle?.stop()
    temp.remove()
  })
})
