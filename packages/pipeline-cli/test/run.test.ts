import { PassThrough } from 'node:stream'
import { waitFor } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BusyError, ExecDisabledError, LimitExceededError } from '../src/index.js'
import { collector, type Fixture, startFixture } from './setup.js'

describe.each(['unix', 'tcp'] as const)('run over %s', (scheme) => {
  let fx: Fixture
  beforeAll(async () => {
    fx = await startFixture(scheme)
  })
  afterAll(() => fx.close())

  it('propagates the exit code and keeps stdout and stderr apart', async () => {
    const stdout = collector()
    const stderr = collector()
    const result = await fx.client().run({ command: 'echo hi; echo err >&2; exit 3' }, { stdout, stderr })
    expect(result).toMatchObject({ code: 3, signal: undefined, timedOut: false })
    expect(stdout.text()).toBe('hi\n')
    expect(stderr.text()).toBe('err\n')
  })

  it('runs argv without a shell', async () => {
    const stdout = collector()
    const result = await fx.client().run({ argv: ['printf', '%s|', 'a b', '$HOME', ';'] }, { stdout })
    expect(result.code).toBe(0)
    expect(stdout.text()).toBe('a b|$HOME|;|')
  })

  it('reports death by signal', async () => {
    const result = await fx.client().run({ command: 'kill -TERM $$' })
    expect(result.signal).toBe('SIGTERM')
    expect(result.code).toBeUndefined()
  })

  it('streams output live, before the command ends, and forwards stdin', async () => {
    const stdout = collector()
    const stdin = new PassThrough()
    let settled = false
    const running = fx
      .client()
      .run({ command: 'echo first; read line; echo "got $line"' }, { stdin, stdout })
      .finally(() => {
        settled = true
      })
    await waitFor(() => stdout.text() === 'first\n', { timeoutMs: 20_000, what: 'the first line' })
    // The command is blocked on stdin, so output arrived while it was still running.
    expect(settled).toBe(false)
    stdin.end('second\n')
    const result = await running
    expect(result.code).toBe(0)
    expect(stdout.text()).toBe('first\ngot second\n')
  })

  it('sets only the requested environment and the working folder', async () => {
    process.env.PIPELINE_TEST_SECRET = 'must-not-leak'
    const stdout = collector()
    const result = await fx
      .client()
      .run({ command: 'echo "$FOO|$PIPELINE_TEST_SECRET|$(pwd)"', env: { FOO: 'bar' }, cwd: '.' }, { stdout })
    delete process.env.PIPELINE_TEST_SECRET
    expect(result.code).toBe(0)
    expect(stdout.text()).toBe(`bar||${fx.root}\n`)
  })

  it('kills the command when the timeout expires', async () => {
    const result = await fx.client().run({ argv: ['sleep', '30'], timeoutMs: 300 })
    expect(result.timedOut).toBe(true)
    expect(result.signal).toBe('SIGTERM')
  })

  it('forwards a signal to the command', async () => {
    const stdout = collector()
    const result = await fx.client().run(
      { command: 'trap "echo trapped; exit 7" INT; echo ready; while :; do sleep 0.05; done' },
      {
        stdout,
        onStarted: (command) => {
          waitFor(() => stdout.text().includes('ready'), { timeoutMs: 20_000 }).then(() =>
            command.kill('SIGINT'),
          )
        },
      },
    )
    expect(result.code).toBe(7)
    expect(stdout.text()).toBe('ready\ntrapped\n')
  })

  it('returns the PID at once with noWait', async () => {
    const result = await fx.client().run({ argv: ['sleep', '0.2'], noWait: true })
    expect(result.pid).toBeGreaterThan(1)
    expect(result.code).toBeUndefined()
  })

  it('refuses a command over the length limit and keeps serving', async () => {
    await expect(fx.client().run({ command: `echo ${'x'.repeat(70_000)}` })).rejects.toBeInstanceOf(
      LimitExceededError,
    )
    expect((await fx.client().run({ argv: ['true'] })).code).toBe(0)
  })

  it('serves many clients at once', async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, index) => {
        const stdout = collector()
        return fx
          .client()
          .run({ command: `sleep 0.2; echo ${index}; exit ${index}` }, { stdout })
          .then((result) => ({ code: result.code, out: stdout.text() }))
      }),
    )
    results.forEach((result, index) => {
      expect(result).toEqual({ code: index, out: `${index}\n` })
    })
  })
})

describe('a server at its session limit', () => {
  let fx: Fixture
  beforeAll(async () => {
    fx = await startFixture('unix', { maxSessions: 1 })
  })
  afterAll(() => fx.close())

  it('refuses one more session with BusyError, then serves again', async () => {
    const stdin = new PassThrough()
    const stdout = collector()
    const first = fx.client().run({ command: 'echo up; cat >/dev/null' }, { stdin, stdout })
    await waitFor(() => stdout.text() === 'up\n', { timeoutMs: 20_000, what: 'the first session' })
    await expect(fx.client().run({ argv: ['true'] })).rejects.toBeInstanceOf(BusyError)
    stdin.end()
    expect((await first).code).toBe(0)
    await waitFor(() => fx.server.stats().active === 0, { timeoutMs: 20_000, what: 'the slot to free' })
    expect((await fx.client().run({ argv: ['true'] })).code).toBe(0)
  })
})

describe('a server without --allow-exec', () => {
  let fx: Fixture
  beforeAll(async () => {
    fx = await startFixture('unix', { allowExec: false })
  })
  afterAll(() => fx.close())

  it('refuses run with ExecDisabledError', async () => {
    await expect(fx.client().run({ argv: ['true'] })).rejects.toBeInstanceOf(ExecDisabledError)
  })
})
