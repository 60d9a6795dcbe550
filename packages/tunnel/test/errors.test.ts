import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import * as errors from '../src/errors.js'

// One instance of every class, built with representative arguments.
const instances: errors.TunnelError[] = [
  new errors.InvalidOptionsError('option x must be 1'),
  new errors.ListenFailedError('tcp://127.0.0.1:1', { cause: new Error('EADDRINUSE') }),
  new errors.ConnectFailedError('tcp://127.0.0.1:1', { cause: new Error('refused') }),
  new errors.ConnectTimeoutError('tcp://127.0.0.1:1', 10),
  new errors.ResolveFailedError({ cause: new Error('bad header') }),
  new errors.ResolveTimeoutError(10),
  new errors.IdleTimeoutError(10),
  new errors.MaxConnectionsError(1),
  new errors.SocketError('inbound', { cause: new Error('reset') }),
  new errors.PrematureCloseError(3),
  new errors.PrefixTooLargeError(64),
  new errors.TunnelClosedError(),
]

it('has one class per code, each a TunnelError with a name of its own', () => {
  const classes = Object.values(errors).filter(
    (value) => typeof value === 'function' && value.prototype instanceof errors.TunnelError,
  )
  expect(classes).toHaveLength(errors.TUNNEL_ERROR_CODES.length)
  expect(instances.map((error) => error.constructor)).toEqual(expect.arrayContaining(classes))
  expect(new Set(instances.map((error) => error.code))).toEqual(new Set(errors.TUNNEL_ERROR_CODES))
  for (const error of instances) {
    expect(error).toBeInstanceOf(errors.TunnelError)
    expect(error.name).toBe(error.constructor.name)
    expect(error.message.length).toBeGreaterThan(10)
  }
})

it('lists exactly the codes and classes in the README error table', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const rows = [...readme.matchAll(/^\| `(ENCLAVE_TUNNEL_[A-Z_]+)` *\| `(\w+)` *\|/gm)].map(
    (m) => `${m[1]} ${m[2]}`,
  )
  expect(new Set(rows.map((row) => row.split(' ')[0]))).toEqual(new Set(errors.TUNNEL_ERROR_CODES))
  expect(new Set(rows)).toEqual(new Set(instances.map((error) => `${error.code} ${error.name}`)))
})
