import { execFile, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { fileURLToPath } from 'node:url'
import { makeTempDir } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EgressHost, startEgressHost } from '../src/host.js'

// Needs root, unshare and iptables (a private network namespace with a REDIRECT rule) and the
// built package (the namespace runs a child process). Without them the suite cannot run at all.
function canUseNetns(): boolean {
  try {
    execFileSync('unshare', ['-n', 'iptables', '-t', 'nat', '-L', 'OUTPUT', '-n'], {
      stdio: 'ignore',
      timeout: 10_000,
    })
    return true
  } catch {
    return false
  }
}
const child = fileURLToPath(new URL('./fixtures/transparent-child.mjs', import.meta.url))
const built = existsSync(fileURLToPath(new URL('../dist/index.js', import.meta.url)))
const available = process.getuid?.() === 0 && built && canUseNetns()

// CI runs as root with iptables installed: there, an unusable namespace is a failure, not a skip.
it.runIf(process.env.CI === 'true')('CI can run the transparent-egress namespace suite', () => {
  expect({ root: process.getuid?.() === 0, built, netns: available }).toMatchObject({
    root: true,
    built: true,
    netns: true,
  })
})

describe.skipIf(!available)(
  'transparent egress: redirected TCP in a network namespace → vsock (dev) → host half',
  () => {
    const temp = makeTempDir('egress-transparent-')
    let target: Server
    let port = 0
    let host: EgressHost

    beforeAll(async () => {
      target = createServer((s) => {
        s.on('data', (c) => s.end(`echo:${c}`))
        s.on('error', () => {})
      })
      await new Promise<void>((r) => target.listen(0, '127.0.0.2', () => r()))
      port = (target.address() as { port: number }).port
      // The host half allows only 127.0.0.2 (loopback needs an explicit entry).
      host = await startEgressHost({ policy: { allow: ['127.0.0.2'] }, dev: { dir: temp.path } })
    })
    afterAll(async () => {
      await host?.close()
      target?.close()
      temp.remove()
    })

    /** Runs the namespace child against .2 (allowed), .3 (refused in the enclave), .4 (refused by the host). */
    const runChild = (env: NodeJS.ProcessEnv = {}) => {
      // The enclave side allows 127.0.0.2 and 127.0.0.4; the host refuses .4; .3 is refused in the enclave.
      const policy = JSON.stringify({ allow: ['127.0.0.2', '127.0.0.4'] })
      return new Promise<string>((resolve, reject) => {
        execFile(
          'unshare',
          [
            '-n',
            'sh',
            '-c',
            'ip link set lo up && exec "$0" "$@"',
            process.execPath,
            child,
            temp.path,
            policy,
            `127.0.0.2:${port}`,
            `127.0.0.3:${port}`,
            `127.0.0.4:${port}`,
          ],
          { timeout: 60_000, env: { ...process.env, ...env } },
          (error, stdout, stderr) =>
            error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
        )
      })
    }
    const expected = () => [
      { target: `127.0.0.2:${port}`, data: 'echo:ping' },
      { target: `127.0.0.3:${port}`, error: 'ECONNRESET' },
      { target: `127.0.0.4:${port}`, error: 'ECONNRESET' },
    ]

    const parse = (out: string) =>
      out
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line))

    it('carries an allowed destination and resets refused ones (either half refusing)', async () => {
      const before = host.stats().refused
      expect(parse(await runChild())).toEqual(expected())
      expect(host.stats().refused - before).toBe(1)
    })

    it("does the same when odyn's egress plug-in starts it from `egress.transparent: true`", async () => {
      const before = host.stats().refused
      expect(parse(await runChild({ VIA_PLUGIN: '1' }))).toEqual(expected())
      expect(host.stats().refused - before).toBe(1)
    })
  },
)
