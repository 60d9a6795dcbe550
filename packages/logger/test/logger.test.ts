import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { type Logger, silentLogger } from '../src/index.js'

describe('Logger', () => {
  it('is satisfied by pino and its children, which log through it', () => {
    const lines: string[] = []
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk))
        done()
      },
    })
    const logger: Logger = pino({ level: 'trace' }, sink)
    expectTypeOf(pino()).toMatchTypeOf<Logger>()
    logger.child({ component: 'test' }).warn({ port: 1 }, 'hello')
    logger.trace?.({}, 'fine detail')
    expect(lines.map((line) => JSON.parse(line))).toMatchObject([
      { level: 40, component: 'test', port: 1, msg: 'hello' },
      { level: 10, msg: 'fine detail' },
    ])
  })

  it('silentLogger drops everything, is frozen, and its children are itself', () => {
    expect(silentLogger.child({ a: 1 })).toBe(silentLogger)
    for (const level of ['trace', 'debug', 'info', 'warn', 'error'] as const) {
      expect(silentLogger[level]?.({ x: 1 }, 'm')).toBeUndefined()
    }
    expect(Object.isFrozen(silentLogger)).toBe(true)
  })
})
