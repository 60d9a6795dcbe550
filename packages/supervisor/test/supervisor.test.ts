import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { waitFor } from '@enclave/test-helpers'
import { connect, listen } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type EnclaveStatus,
  EXIT_SIGNALED,
  exitCodeForStatus,
  streamLogs,
  watchStatus,
  zombieChildren,
} from '../src/index.js'
import { type Harness, harness } from './helpers.js'

let current: Harness | undefined
afterEach(async () => {
  await current?.cleanup()
  current = undefined
})

function run(options: Parameters<typeof harness>[0]): Harness {
  current = harness(options)
  return current
}

async function logText(h: Harness): Promise<string> {
  return h.odyn.logs.snapshot().toString('utf8')
}

describe('odyn supervisor (real processes, dev-mode vsock)', () => {
  it('publishes exited{code} and the host maps it to the exit code', async () => {
    const h = run({ command: ['sh', '-c', 'echo hello; exit 3'], user: null })
    await h.odyn.start()
    const seen: EnclaveStatus[] = []
    const final = await watchStatus(h.statusAddress, { dev: h.dev, onStatus: (s) => seen.push(s) })
    expect(final).toEqual({ status: 'exited', code: 3 })
    expect(exitCodeForStatus(final)).toBe(3)
    expect(seen.at(-1)).toEqual(final)
    await waitFor(async () => (await logText(h)).includes('hello\n'), { what: 'the app log line' })
  })

  it('a death by signal is signaled{name} and exit code 107', async () => {
    const h = run({ command: ['sh', '-c', 'kill -KILL $$'], user: null })
    await h.odyn.start()
    const final = await watchStatus(h.statusAddress, { dev: h.dev })
    expect(final).toEqual({ status: 'signaled', signal: 'SIGKILL' })
    expect(exitCodeForStatus(final)).toBe(EXIT_SIGNALED)
  })

  it('a command that cannot start is fatal{error}, and the host parses it', async () => {
    const h = run({ command: ['/nonexistent/app "quoted"'], user: null })
    await h.odyn.start()
    const final = await watchStatus(h.statusAddress, { dev: h.dev })
    expect(final.status).toBe('fatal')
    expect(final.status === 'fatal' && final.error).toContain('/nonexistent/app \\"quoted\\"')
    expect(exitCodeForStatus(final)).toBe(108)
  })

  it('shutdown forwards SIGTERM to the app process group and everything stops', async () => {
    const h = run({
      command: [
        'sh',
        '-c',
        'trap "echo got TERM; exit 0" TERM; sleep 60 & child=$!; echo ready; wait $child',
      ],
      user: null,
    })
    await h.odyn.start()
    await waitFor(async () => (await logText(h)).includes('ready'), { what: 'ready', timeoutMs: 10_000 })
    const pid = h.odyn.appPid!
    const final = await h.odyn.shutdown('SIGTERM')
    expect(final).toEqual({ status: 'exited', code: 0 })
    expect(await logText(h)).toContain('got TERM')
    // The group (sh and its sleep) is gone.
    expect(() => process.kill(-pid, 0)).toThrow()
  })

  it('SIGKILLs an app that ignores SIGTERM after the grace period', async () => {
    const h = run({
      command: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 1; done'],
      user: null,
      graceMs: 500,
    })
    await h.odyn.start()
    await waitFor(async () => (await logText(h)).includes('ready'), { what: 'ready', timeoutMs: 10_000 })
    expect(await h.odyn.shutdown('SIGTERM')).toEqual({ status: 'signaled', signal: 'SIGKILL' })
  })

  it('reaps orphaned grandchildren (no zombie left whose parent is the supervisor)', async () => {
    // Each subshell starts a short sleep and exits at once: the sleeps are orphaned, re-parented
    // to the supervisor (child subreaper) and become zombies when they end.
    const h = run({
      command: ['sh', '-c', 'for i in 1 2 3 4 5; do (sleep 0.2 &); done; echo spawned; sleep 2; echo done'],
      user: null,
    })
    await h.odyn.start()
    await waitFor(() => h.odyn.reaped >= 5, { what: 'five orphans reaped', timeoutMs: 15_000 })
    expect(zombieChildren(process.pid)).toEqual([])
    // The app itself (libuv's child) still got its own exit status.
    expect(await h.odyn.finished).toEqual({ status: 'exited', code: 0 })
    expect(await logText(h)).toContain('done')
  })

  it('an in-process plug-in that spawns through child_process keeps its exit status while orphans are reaped', async () => {
    let pluginExit: { code: number | null; signal: string | null } | undefined
    const h = run({
      command: ['sh', '-c', 'for i in 1 2 3; do (sleep 0.2 &); done; sleep 2; echo done'],
      user: null,
      plugins: [
        {
          name: 'spawner',
          async start() {
            // Not through the supervisor: a library in the plug-in calling child_process itself.
            const child = spawn('sh', ['-c', 'sleep 0.5; exit 7'], { stdio: 'ignore' })
            child.once('exit', (code, signal) => {
              pluginExit = { code, signal }
            })
            return { stop: async () => {} }
          },
        },
      ],
    })
    await h.odyn.start()
    await waitFor(() => h.odyn.reaped >= 3, { what: 'three orphans reaped', timeoutMs: 15_000 })
    await waitFor(() => pluginExit !== undefined, { what: "the plug-in child's exit", timeoutMs: 15_000 })
    expect(pluginExit).toEqual({ code: 7, signal: null })
    expect(await h.odyn.finished).toEqual({ status: 'exited', code: 0 })
  })

  it("watchStatus skips a bad line and reads enclaver's unescaped fatal message", async () => {
    const h = run({ command: ['true'], user: null })
    const server = await listen('vsock://any:17000', { dev: h.dev }, (socket) => {
      socket.write('{"status":"running"}\ngarbage\n{"status":"fatal","error":"cannot read "x""}\n')
    })
    try {
      const invalid: string[] = []
      const final = await watchStatus(h.statusAddress, {
        dev: h.dev,
        onInvalid: (_e, line) => invalid.push(line),
      })
      expect(final).toEqual({ status: 'fatal', error: 'cannot read "x"' })
      expect(invalid).toEqual(['garbage'])
    } finally {
      server.close()
    }
  })

  it('in dev mode the boot heartbeat goes to the dev-mode CID 3, never the real host', async () => {
    const h = run({ command: ['sh', '-c', 'exit 0'], user: null, heartbeat: {} })
    const got: number[] = []
    const listener = await listen('vsock://3:9000', { dev: { dir: h.dir, cid: 3 } }, (socket) => {
      socket.once('data', (chunk: Buffer) => {
        got.push(...chunk)
        socket.end(Buffer.from([0xb7]))
      })
    })
    try {
      await h.odyn.start()
      expect(got).toEqual([0xb7])
      expect(await h.odyn.finished).toEqual({ status: 'exited', code: 0 })
    } finally {
      listener.close()
    }
  })

  it.runIf(process.getuid?.() === 0)('runs the app as uid/gid 1000 by default when root', async () => {
    const h = run({ command: ['sh', '-c', 'echo "uid=$(id -u) gid=$(id -g)"'] })
    await h.odyn.start()
    await h.odyn.finished
    await waitFor(async () => (await logText(h)).includes('uid='), { what: 'id output' })
    expect(await logText(h)).toContain('uid=1000 gid=1000')
  })

  it('a log flood with a stalled reader neither blocks the app nor tears lines', async () => {
    const h2 = run({
      command: [
        process.execPath,
        '-e',
        "const l='x'.repeat(100);let i=0;function w(){while(i<40000){if(!process.stdout.write(i+' '+l+'\\n')){i++;return process.stdout.once('drain',w)}i++}}w()",
      ],
      user: null,
    })
    await h2.odyn.start()
    // A reader that connects and never reads.
    const stalled = await connect(h2.logAddress, { dev: h2.dev })
    stalled.pause()
    const final = await h2.odyn.finished
    expect(final).toEqual({ status: 'exited', code: 0 })
    // A fresh reader gets the ring: whole lines only, the newest last.
    const chunks: Buffer[] = []
    const sink = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(chunk)
        cb()
      },
    })
    const stream = streamLogs(h2.logAddress, sink, { dev: h2.dev })
    await waitFor(
      () =>
        Buffer.concat(chunks)
          .toString()
          .includes(`39999 ${'x'.repeat(100)}\n`),
      {
        what: 'the last line',
        timeoutMs: 10_000,
      },
    )
    stream.close()
    const lines = Buffer.concat(chunks).toString().split('\n').slice(0, -1)
    expect(lines.length).toBeGreaterThan(100)
    for (const line of lines) expect(line).toMatch(/^\d+ x{100}$/)
    expect(Buffer.concat(chunks).length).toBeLessThanOrEqual(128 * 1024)
    stalled.destroy()
    await once(stalled, 'close')
  })

  it('starts plug-ins before the app (their env reaches it) and stops them after; the order is servers → loopback → plug-ins → app', async () => {
    const order: string[] = []
    let stopped = false
    const h = run({
      command: ['sh', '-c', 'echo "proxy=$http_proxy"'],
      user: null,
      loopback: async () => {
        order.push('loopback')
      },
      plugins: [
        {
          name: 'egress',
          async start(ctx) {
            order.push('egress')
            expect(ctx.dev).toEqual(h.dev)
            return {
              env: { http_proxy: 'http://127.0.0.1:10000/' },
              stop: async () => {
                stopped = true
              },
            }
          },
        },
      ],
    })
    await h.odyn.start()
    expect(order).toEqual(['loopback', 'egress'])
    expect(await h.odyn.finished).toEqual({ status: 'exited', code: 0 })
    await waitFor(() => stopped, { what: 'the plug-in to stop' })
    expect(await logText(h)).toContain('proxy=http://127.0.0.1:10000/')
  })

  it('a failing plug-in or a configuration error becomes fatal{error}; the app never starts', async () => {
    const h = run({
      command: ['sh', '-c', 'echo app-ran'],
      user: null,
      plugins: [
        {
          name: 'kms',
          async start() {
            throw new Error('kms_proxy needs egress')
          },
        },
      ],
    })
    await h.odyn.start()
    const final = await watchStatus(h.statusAddress, { dev: h.dev })
    expect(final.status === 'fatal' && final.error).toMatch(/plug-in kms.*kms_proxy needs egress/)
    expect(await logText(h)).not.toContain('app-ran')
    await h.cleanup()
    const h2 = run({
      command: ['true'],
      user: null,
      startupError: new Error('invalid configuration in odyn.yaml'),
    })
    await h2.odyn.start()
    expect(await watchStatus(h2.statusAddress, { dev: h2.dev })).toEqual({
      status: 'fatal',
      error: 'invalid configuration in odyn.yaml',
    })
  })
})
