import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { runCli } from '@enclave/test-helpers'
import { describe, expect, it } from 'vitest'

// The project's main job: examples/hello-enclave end to end (needs `pnpm build`).
const START = fileURLToPath(new URL('../../../examples/hello-enclave/start.mjs', import.meta.url))

/** A port that was free a moment ago: the demo binds it itself, so a lost race is retried below. */
function probablyFreePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

describe('examples/hello-enclave', () => {
  it('demonstrates the server tunnel, the client tunnel and the logs, then exits 0', {
    timeout: 60_000,
  }, async () => {
    let port = 0
    let r: Awaited<ReturnType<typeof runCli>> | undefined
    // The demo refuses a taken --port with exit 2 before starting anything: then try another.
    for (
      let attempt = 0;
      attempt < 3 && (r === undefined || (r.code === 2 && /is taken/.test(r.stderr)));
      attempt++
    ) {
      port = await probablyFreePort()
      r = await runCli(START, ['--once', '--port', String(port)], { timeoutMs: 50_000 })
    }
    if (!r) throw new Error('the demo never ran')
    // A Node warning on stderr is fine; an error or a stack trace is not.
    expect(r.stderr.split('\n').filter((line) => /error|^\s+at\s/i.test(line))).toEqual([])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`$ curl http://localhost:${port}/\nHello from the enclave!\n`)
    expect(r.stdout).toMatch(/"ok":true,"url":"http:\/\/127\.0\.0\.1:\d+\/from-the-enclave","status":200/)
    // Enclave log lines, read off the host's stdout.
    expect(r.stdout).toMatch(/\[enclave log\] tunnels ready/)
    // The allowlist forwarded HELLO_* only.
    expect(r.stdout).toContain('"forwardedEnv":["HELLO_HTTP_PORT","HELLO_UPSTREAM_URL"]')
    expect(r.stdout).not.toContain('DEMO_SECRET"')
    expect(r.stdout).toMatch(/bridge host exited with 0/)
    expect(r.stdout).toMatch(/enclave app exited with 0/)
  })

  it('fails clearly when its port is taken', async () => {
    const blocker = createServer()
    const port = await new Promise<number>((resolve) =>
      blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)),
    )
    const r = await runCli(START, ['--once', '--port', String(port)])
    blocker.close()
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(new RegExp(`port ${port} is taken`))
  })
})
