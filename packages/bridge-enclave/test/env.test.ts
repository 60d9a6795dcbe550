import { describe, expect, it } from 'vitest'
import { envVar, InvalidEnvError, parseEnv } from '../src/index.js'

describe('parseEnv', () => {
  it('parses typed values with defaults', () => {
    const config = parseEnv(
      { PORT: '8081', DEBUG: 'yes', UPSTREAM: 'https://api.example.com/v1', MODE: 'b', LIST: 'a, b,,c' },
      {
        port: envVar.int('PORT', { default: 8080, min: 1, max: 65535 }),
        debug: envVar.bool('DEBUG', { default: false }),
        upstream: envVar.url('UPSTREAM', { protocols: ['https'] }),
        mode: envVar.oneOf('MODE', ['a', 'b'] as const),
        list: envVar.list('LIST'),
        name: envVar.string('NAME', { default: 'anon' }),
        maybe: envVar.optional(envVar.int('MAYBE')),
      },
    )
    expect(config.port).toBe(8081)
    expect(config.debug).toBe(true)
    expect(config.upstream.host).toBe('api.example.com')
    expect(config.mode).toBe('b')
    expect(config.list).toEqual(['a', 'b', 'c'])
    expect(config.name).toBe('anon')
    expect(config.maybe).toBeUndefined()
  })

  it('reports every problem at once, each naming its variable', () => {
    let caught: unknown
    try {
      parseEnv(
        { PORT: '80a', DEBUG: 'maybe', UPSTREAM: 'ftp://x' },
        {
          port: envVar.int('PORT'),
          debug: envVar.bool('DEBUG'),
          upstream: envVar.url('UPSTREAM', { protocols: ['http', 'https'] }),
          key: envVar.string('API_KEY'),
        },
      )
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(InvalidEnvError)
    const err = caught as InvalidEnvError
    expect(err.problems.map((p) => p.variable)).toEqual(['PORT', 'DEBUG', 'UPSTREAM', 'API_KEY'])
    expect(err.message).toMatch(/API_KEY: is required but not set/)
    expect(err.code).toBe('ENCLAVE_BRIDGE_ENCLAVE_INVALID_ENV')
  })

  it('ignores inherited properties such as __proto__ or toString', () => {
    const env = JSON.parse('{"__proto__": "x"}') as Record<string, string>
    expect(() => parseEnv(env, { v: envVar.string('toString') })).toThrow(InvalidEnvError)
  })
})
