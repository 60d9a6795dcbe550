import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  formatAddress,
  InvalidAddressError,
  parseAddress,
  type TransportAddress,
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  VMADDR_CID_LOCAL,
  VMADDR_CID_PARENT,
} from '../src/index.js'

describe('parseAddress', () => {
  it.each([
    ['vsock://16:5000', { scheme: 'vsock', cid: 16, port: 5000 }],
    ['vsock://any:5000', { scheme: 'vsock', cid: VMADDR_CID_ANY, port: 5000 }],
    ['vsock://ANY:1', { scheme: 'vsock', cid: VMADDR_CID_ANY, port: 1 }],
    ['vsock://host:8000', { scheme: 'vsock', cid: VMADDR_CID_HOST, port: 8000 }],
    ['vsock://parent:8000', { scheme: 'vsock', cid: VMADDR_CID_PARENT, port: 8000 }],
    ['vsock://local:8000', { scheme: 'vsock', cid: VMADDR_CID_LOCAL, port: 8000 }],
    ['vsock://4294967295:4294967295', { scheme: 'vsock', cid: 0xffffffff, port: 0xffffffff }],
    ['unix:///run/enclave/app.sock', { scheme: 'unix', path: '/run/enclave/app.sock' }],
    ['tcp://127.0.0.1:8080', { scheme: 'tcp', host: '127.0.0.1', port: 8080 }],
    ['tcp://localhost:0', { scheme: 'tcp', host: 'localhost', port: 0 }],
    ['tcp://[::1]:443', { scheme: 'tcp', host: '::1', port: 443 }],
    ['tcp://[2001:db8::1]:65535', { scheme: 'tcp', host: '2001:db8::1', port: 65535 }],
    [
      'tcp://kms.us-east-1.amazonaws.com:443',
      { scheme: 'tcp', host: 'kms.us-east-1.amazonaws.com', port: 443 },
    ],
    ['hvsock:///var/run/fc/v.sock:5000', { scheme: 'hvsock', path: '/var/run/fc/v.sock', port: 5000 }],
    ['hvsock:///odd:name/v.sock:52', { scheme: 'hvsock', path: '/odd:name/v.sock', port: 52 }],
    ['  tcp://127.0.0.1:1  ', { scheme: 'tcp', host: '127.0.0.1', port: 1 }],
  ])('%s', (input, expected) => {
    expect(parseAddress(input)).toEqual(expected)
  })

  it.each([
    ['', 'missing scheme'],
    ['16:5000', 'missing scheme'],
    ['udp://1.2.3.4:5', 'unknown scheme "udp"'],
    ['vsock://16', 'expected vsock://CID:PORT'],
    ['vsock://16:5000:1', 'expected vsock://CID:PORT'],
    ['vsock://-1:5000', 'CID must be a decimal number'],
    ['vsock://4294967296:1', 'CID 4294967296 is out of range'],
    ['vsock://16:4294967296', 'port 4294967296 is out of range'],
    ['vsock://16:0x10', 'port must be a decimal number'],
    ['vsock://guest:1', 'CID must be a decimal number'],
    ['unix://relative.sock', 'must be an absolute path'],
    ['unix:///a\0b', 'NUL byte'],
    ['tcp://127.0.0.1', 'expected tcp://host:port'],
    ['tcp://::1:80', 'expected tcp://host:port'],
    ['tcp://[127.0.0.1]:80', 'is not an IPv6 address'],
    ['tcp://1.2.3.4:65536', 'out of range 0..65535'],
    ['tcp://a b:1', 'is not an IPv4 address'],
    ['tcp://host/x:1', 'expected tcp://host:port'],
    ['hvsock:///path/without/port', 'expected hvsock:///abs/path:PORT'],
    ['hvsock://rel:1', 'must be an absolute path'],
  ])('rejects %j (%s)', (input, why) => {
    const err = (() => {
      try {
        parseAddress(input)
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(InvalidAddressError)
    expect(err).toMatchObject({ code: 'ENCLAVE_VSOCK_INVALID_ADDRESS' })
    expect((err as Error).message).toContain(why)
    expect((err as Error).message).toContain('valid forms:')
  })

  it('checks address objects and returns a frozen copy', () => {
    const input = { scheme: 'vsock' as const, cid: 3, port: 1 }
    const parsed = parseAddress(input)
    expect(parsed).toEqual(input)
    expect(parsed).not.toBe(input)
    expect(Object.isFrozen(parsed)).toBe(true)
    for (const bad of [
      { scheme: 'vsock', cid: 1.5, port: 1 },
      { scheme: 'vsock', cid: 3, port: -1 },
      { scheme: 'tcp', host: '', port: 1 },
      { scheme: 'tcp', host: 'x', port: 70000 },
      { scheme: 'unix', path: 'rel' },
      { scheme: 'hvsock', path: '/p', port: '1' },
      { scheme: 'sctp' },
      null,
      42,
    ]) {
      expect(() => parseAddress(bad as unknown as TransportAddress), JSON.stringify(bad)).toThrow(
        InvalidAddressError,
      )
    }
  })
})

const u32 = fc.integer({ min: 0, max: 0xffffffff })
const absPath = fc
  .array(fc.stringMatching(/^[A-Za-z0-9._:-]{1,12}$/), { minLength: 1, maxLength: 5 })
  .map((parts) => `/${parts.join('/')}`)
const address: fc.Arbitrary<TransportAddress> = fc.oneof(
  fc.record({ scheme: fc.constant('vsock' as const), cid: u32, port: u32 }),
  fc.record({ scheme: fc.constant('unix' as const), path: absPath }),
  fc.record({
    scheme: fc.constant('tcp' as const),
    host: fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()),
    port: fc.integer({ min: 0, max: 65535 }),
  }),
  fc.record({ scheme: fc.constant('hvsock' as const), path: absPath, port: u32 }),
)

describe('formatAddress', () => {
  it('round-trips: parseAddress(formatAddress(a)) equals a', () => {
    fc.assert(
      fc.property(address, (a) => {
        expect(parseAddress(formatAddress(a))).toEqual(parseAddress(a))
      }),
      { numRuns: 2000 },
    )
  })

  it('writes IPv6 hosts in brackets and CID any as "any"', () => {
    expect(formatAddress({ scheme: 'tcp', host: '::1', port: 80 })).toBe('tcp://[::1]:80')
    expect(formatAddress({ scheme: 'vsock', cid: VMADDR_CID_ANY, port: 9 })).toBe('vsock://any:9')
  })
})

describe('parseAddress on hostile input', () => {
  it('random strings only ever parse or throw InvalidAddressError', () => {
    const prefix = fc.constantFrom('', 'vsock://', 'unix://', 'tcp://', 'hvsock://', 'tcp://[')
    // Address-like characters most of the time (to reach deep paths), any code points otherwise.
    const rest = fc.oneof(
      { weight: 3, arbitrary: fc.stringMatching(/^[a-z0-9:/[\]._@ -]{0,40}$/) },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 80 }) },
    )
    fc.assert(
      fc.property(prefix, rest, (p, rest) => {
        try {
          const parsed = parseAddress(p + rest)
          expect(parseAddress(formatAddress(parsed))).toEqual(parsed)
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidAddressError)
        }
      }),
      { numRuns: 2000 },
    )
  })
})
