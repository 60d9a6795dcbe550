import { describe, expect, it } from 'vitest'
import { connect, DEFAULTS, InvalidOptionError, listen } from '../src/index.js'
import { resolveConnectOptions, resolveListenOptions } from '../src/options.js'

describe('options', () => {
  it.each([
    [{ timeoutMs: 0 }, /timeoutMs must be a number from 1/],
    [{ timeoutMs: Number.NaN }, /timeoutMs/],
    [{ timeoutMs: 2 ** 31 }, /timeoutMs/],
    [{ signal: 'nope' }, /signal must be an AbortSignal/],
    [{ allowHalfOpen: 'yes' }, /allowHalfOpen must be a boolean/],
    [{ dev: { dir: 'rel' } }, /dev\.dir must be an absolute path/],
    [{ dev: 'on' }, /dev must be/],
  ])('connect rejects %j with InvalidOptionError', async (options, message) => {
    const err = await connect('tcp://127.0.0.1:1', options as never).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidOptionError)
    expect((err as Error).message).toMatch(message)
  })

  it.each([[{ backlog: 0 }], [{ backlog: 1.5 }], [{ backlog: 70000 }]])(
    'listen rejects %j',
    async (options) => {
      await expect(listen('tcp://127.0.0.1:0', options)).rejects.toThrow(
        /backlog must be an integer from 1 to 65535/,
      )
    },
  )

  it('resolves defaults into a new frozen object and never touches the caller object', () => {
    const input = { timeoutMs: 5, dev: false as const }
    const resolved = resolveConnectOptions(input)
    expect(resolved).toEqual({ signal: undefined, timeoutMs: 5, dev: undefined, allowHalfOpen: false })
    expect(Object.isFrozen(resolved)).toBe(true)
    expect(input).toEqual({ timeoutMs: 5, dev: false })
    expect(resolveListenOptions({ dev: false })).toMatchObject({
      backlog: DEFAULTS.backlog,
      allowHalfOpen: false,
    })
    expect(Object.isFrozen(DEFAULTS)).toBe(true)
  })
})
