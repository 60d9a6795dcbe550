import { waitFor } from '@enclave/test-helpers'
import { afterEach, describe, expect, it } from 'vitest'
import {
  parseOdynConfig,
  type ServiceConfig,
  ServiceGraphError,
  serviceOrder,
  shouldRestart,
} from '../src/index.js'
import { type Harness, harness } from './helpers.js'

const svc = (name: string, extra: Partial<ServiceConfig> = {}): ServiceConfig => ({
  name,
  command: ['true'],
  restart: 'no',
  restartSec: 0,
  after: [],
  requires: [],
  before: [],
  environment: {},
  enabled: true,
  ...extra,
})

let current: Harness | undefined
afterEach(async () => {
  await current?.cleanup()
  current = undefined
})

describe('service ordering and restart policies', () => {
  it('orders by requires/after/before and rejects cycles and unknown requirements', () => {
    const order = serviceOrder([
      svc('web', { requires: ['db'], after: ['cache'] }),
      svc('db'),
      svc('cache'),
      svc('metrics', { before: ['db'] }),
    ]).map((s) => s.name)
    expect(order.indexOf('db')).toBeLessThan(order.indexOf('web'))
    expect(order.indexOf('cache')).toBeLessThan(order.indexOf('web'))
    expect(order.indexOf('metrics')).toBeLessThan(order.indexOf('db'))
    expect(() => serviceOrder([svc('a', { after: ['b'] }), svc('b', { after: ['a'] })])).toThrow(/cycle/)
    expect(() => serviceOrder([svc('a', { requires: ['ghost'] })])).toThrow(ServiceGraphError)
  })

  it('applies no / always / on-failure / on-success', () => {
    const ok = { code: 0 }
    const bad = { code: 1 }
    const killed = { signal: 'SIGKILL' as const }
    expect([ok, bad, killed].map((e) => shouldRestart('no', e))).toEqual([false, false, false])
    expect([ok, bad, killed].map((e) => shouldRestart('always', e))).toEqual([true, true, true])
    expect([ok, bad, killed].map((e) => shouldRestart('on-failure', e))).toEqual([false, true, true])
    expect([ok, bad, killed].map((e) => shouldRestart('on-success', e))).toEqual([true, false, false])
  })

  it('restarts services by policy with real processes, in dependency order, and stops them with the app', async () => {
    const config = parseOdynConfig({
      services: [
        {
          name: 'flaky',
          command: ['sh', '-c', 'echo flaky-run; exit 1'],
          restart: 'on-failure',
          restart_sec: 0.1,
        },
        {
          name: 'once',
          command: ['sh', '-c', 'echo once-run; exit 0'],
          restart: 'on-failure',
          restart_sec: 0.1,
        },
        { name: 'first', command: ['sh', '-c', 'echo first-run; exec sleep 60'], before: ['flaky', 'once'] },
      ],
    })
    current = harness({ command: ['sh', '-c', 'sleep 60'], user: null, config })
    const { odyn } = current
    await odyn.start()
    await waitFor(() => (odyn.services.list().find((s) => s.name === 'flaky')?.restarts ?? 0) >= 2, {
      what: 'two restarts of flaky',
      timeoutMs: 15_000,
    })
    const byName = Object.fromEntries(odyn.services.list().map((s) => [s.name, s]))
    expect(byName.once?.restarts).toBe(0)
    expect(byName.once?.lastExit).toEqual({ code: 0 })
    expect(byName.first?.state).toBe('running')
    const log = odyn.logs.snapshot().toString()
    expect(log.indexOf('[first] first-run')).toBeGreaterThanOrEqual(0)
    expect(log.indexOf('[first] first-run')).toBeLessThan(log.indexOf('[flaky] flaky-run'))
    const firstPid = byName.first!.pid!
    await odyn.shutdown('SIGTERM')
    expect(() => process.kill(firstPid, 0)).toThrow()
    const after = odyn.services.list().find((s) => s.name === 'flaky')!.restarts
    await new Promise((r) => setTimeout(r, 400))
    expect(odyn.services.list().find((s) => s.name === 'flaky')!.restarts).toBe(after)
  })

  it('a stopped service is not restarted, and start() brings it back', async () => {
    const config = parseOdynConfig({
      services: [{ name: 'loop', command: ['sleep', '60'], restart: 'always', restart_sec: 0 }],
    })
    current = harness({ command: ['sleep', '60'], user: null, config })
    const { odyn } = current
    await odyn.start()
    await odyn.services.stop('loop', 2000)
    await new Promise((r) => setTimeout(r, 300))
    expect(odyn.services.list()[0]).toMatchObject({ state: 'stopped', restarts: 0 })
    await odyn.services.start('loop')
    expect(odyn.services.list()[0]?.state).toBe('running')
  })
})
