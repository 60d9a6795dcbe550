import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type BridgeSettings,
  InvalidSettingsError,
  newEnclaveId,
  normalizeUuid,
  settingsFromJson,
  settingsToJson,
} from '../src/index.js'

// The shape DIMO's Go example sends (examples/simple-enclave/main.go), durations in nanoseconds.
const GO_EXAMPLE = {
  appName: 'simple-enclave',
  watchdog: { enclaveId: '6ba7b810-9dad-41d1-80b4-00c04fd430c8', interval: 30_000_000_000 },
  logger: { level: 'debug' },
  servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: 8080 }],
  clients: [{ enclaveDialPort: 5002, requestTimeout: 300_000_000_000 }],
}

function fieldOf(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidSettingsError)
    return (err as InvalidSettingsError).field
  }
  throw new Error('expected InvalidSettingsError')
}

describe('settingsFromJson', () => {
  it('reads the Go wire format into milliseconds', () => {
    const { settings, warnings } = settingsFromJson(GO_EXAMPLE)
    expect(warnings).toEqual([])
    expect(settings).toEqual({
      appName: 'simple-enclave',
      watchdog: { enclaveId: '6ba7b810-9dad-41d1-80b4-00c04fd430c8', intervalMs: 30_000 },
      logger: { level: 'debug' },
      servers: [{ enclaveCid: 16, enclaveListenPort: 5001, bridgeTcpPort: 8080 }],
      clients: [{ enclaveDialPort: 5002, requestTimeoutMs: 300_000 }],
    })
  })

  it('accepts null slices (Go nil) and requestTimeout 0 as 5 minutes', () => {
    const { settings } = settingsFromJson({
      ...GO_EXAMPLE,
      servers: null,
      clients: [{ enclaveDialPort: 1, requestTimeout: 0 }],
    })
    expect(settings.servers).toEqual([])
    expect(settings.clients[0]?.requestTimeoutMs).toBe(300_000)
  })

  it('warns about unknown fields at every level, by path', () => {
    const { warnings } = settingsFromJson({
      ...GO_EXAMPLE,
      tls: {},
      watchdog: { ...GO_EXAMPLE.watchdog, x: 1 },
      servers: [{ ...GO_EXAMPLE.servers[0], proxyProtocol: true }],
    })
    expect(warnings).toEqual([
      'unknown field "tls" ignored',
      'unknown field "watchdog.x" ignored',
      'unknown field "servers[0].proxyProtocol" ignored',
    ])
  })

  it('names the field of every wrong type or range', () => {
    expect(fieldOf(() => settingsFromJson([]))).toBe('(root)')
    expect(fieldOf(() => settingsFromJson({ ...GO_EXAMPLE, appName: 7 }))).toBe('appName')
    expect(fieldOf(() => settingsFromJson({ ...GO_EXAMPLE, watchdog: undefined }))).toBe('watchdog')
    expect(fieldOf(() => settingsFromJson({ ...GO_EXAMPLE, watchdog: { interval: 1e9 } }))).toBe(
      'watchdog.enclaveId',
    )
    expect(
      fieldOf(() =>
        settingsFromJson({
          ...GO_EXAMPLE,
          watchdog: { enclaveId: '00000000-0000-0000-0000-000000000000', interval: 1e9 },
        }),
      ),
    ).toBe('watchdog.enclaveId')
    expect(
      fieldOf(() =>
        settingsFromJson({ ...GO_EXAMPLE, watchdog: { ...GO_EXAMPLE.watchdog, interval: '30s' } }),
      ),
    ).toBe('watchdog.interval')
    expect(fieldOf(() => settingsFromJson({ ...GO_EXAMPLE, logger: { level: 3 } }))).toBe('logger.level')
    expect(fieldOf(() => settingsFromJson({ ...GO_EXAMPLE, servers: {} }))).toBe('servers')
    expect(
      fieldOf(() =>
        settingsFromJson({ ...GO_EXAMPLE, servers: [{ ...GO_EXAMPLE.servers[0], bridgeTcpPort: 70000 }] }),
      ),
    ).toBe('servers[0].bridgeTcpPort')
    expect(
      fieldOf(() =>
        settingsFromJson({ ...GO_EXAMPLE, servers: [{ ...GO_EXAMPLE.servers[0], enclaveCid: -1 }] }),
      ),
    ).toBe('servers[0].enclaveCid')
    // The parent (3), host (2), hypervisor (0) and "any" are never an enclave's CID.
    for (const enclaveCid of [0, 2, 3, 0xffffffff]) {
      expect(
        fieldOf(() =>
          settingsFromJson({ ...GO_EXAMPLE, servers: [{ ...GO_EXAMPLE.servers[0], enclaveCid }] }),
        ),
      ).toBe('servers[0].enclaveCid')
    }
    // vsock loopback (1) is accepted: the host still requires it to equal the handshake's peer CID.
    expect(
      settingsFromJson({ ...GO_EXAMPLE, servers: [{ ...GO_EXAMPLE.servers[0], enclaveCid: 1 }] }).settings
        .servers[0]?.enclaveCid,
    ).toBe(1)
    expect(fieldOf(() => settingsFromJson({ ...GO_EXAMPLE, clients: [{ enclaveDialPort: 1.5 }] }))).toBe(
      'clients[0].enclaveDialPort',
    )
    expect(
      fieldOf(() =>
        settingsFromJson({ ...GO_EXAMPLE, servers: [GO_EXAMPLE.servers[0], GO_EXAMPLE.servers[0]] }),
      ),
    ).toBe('servers[1].bridgeTcpPort')
    expect(
      fieldOf(() =>
        settingsFromJson({
          ...GO_EXAMPLE,
          clients: Array.from({ length: 65 }, (_, i) => ({ enclaveDialPort: i })),
        }),
      ),
    ).toBe('clients')
  })

  it('the error message says which field and why', () => {
    expect(() =>
      settingsFromJson({ ...GO_EXAMPLE, watchdog: { ...GO_EXAMPLE.watchdog, interval: '30s' } }),
    ).toThrow('invalid bridge settings: watchdog.interval: expected an integer, got a string')
  })

  it('never throws anything but InvalidSettingsError, whatever JSON arrives (fuzz)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          settingsFromJson(value)
        } catch (err) {
          if (!(err instanceof InvalidSettingsError)) throw err
        }
      }),
      { numRuns: 500 },
    )
  })

  it('round-trips through the wire format (property)', () => {
    const port = fc.integer({ min: 1, max: 65535 })
    const arb: fc.Arbitrary<BridgeSettings> = fc.record({
      appName: fc.string(),
      watchdog: fc.record({
        enclaveId: fc.uuid().filter((u) => !/^0{8}-0{4}-0{4}-0{4}-0{12}$/.test(u)),
        intervalMs: fc.integer({ min: 1, max: 86_400_000 }),
      }),
      logger: fc.record({ level: fc.constantFrom('', 'debug', 'info') }),
      servers: fc.uniqueArray(
        fc.record({
          enclaveCid: fc.integer({ min: 4, max: 0xfffffffe }),
          enclaveListenPort: fc.nat(),
          bridgeTcpPort: port,
        }),
        { selector: (s) => s.bridgeTcpPort, maxLength: 5 },
      ),
      clients: fc.uniqueArray(
        fc.record({ enclaveDialPort: fc.nat(), requestTimeoutMs: fc.integer({ min: 1, max: 10_000_000 }) }),
        { selector: (c) => c.enclaveDialPort, maxLength: 5 },
      ),
    })
    fc.assert(
      fc.property(arb, (s) => {
        const back = settingsFromJson(JSON.parse(JSON.stringify(settingsToJson(s)))).settings
        expect(back).toEqual({
          ...s,
          watchdog: { ...s.watchdog, enclaveId: s.watchdog.enclaveId.toLowerCase() },
        })
      }),
      { numRuns: 200 },
    )
  })
})

describe('normalizeUuid', () => {
  it('accepts the text forms gofrs/uuid reads', () => {
    const c = '6ba7b810-9dad-41d1-80b4-00c04fd430c8'
    expect(normalizeUuid(c.toUpperCase())).toBe(c)
    expect(normalizeUuid(`{${c}}`)).toBe(c)
    expect(normalizeUuid(`urn:uuid:${c}`)).toBe(c)
    expect(normalizeUuid(c.replaceAll('-', ''))).toBe(c)
    expect(normalizeUuid('not-a-uuid')).toBeUndefined()
  })
})

describe('newEnclaveId', () => {
  it('gives v4 UUIDs without a 0x0A byte (Go hosts split heartbeats at LF)', () => {
    for (let i = 0; i < 2000; i++) {
      const id = newEnclaveId()
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      expect(Buffer.from(id.replaceAll('-', ''), 'hex').includes(0x0a)).toBe(false)
    }
  })
})
