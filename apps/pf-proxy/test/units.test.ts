import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { Allowlist, parseIpAddr, parseVsockAddr, parseVsockTarget } from '../src/addresses.js'
import * as errors from '../src/errors.js'
import { levelFromRustLog } from '../src/logger.js'

describe('--allow', () => {
  const allow = new Allowlist('--allow', ['10.0.0.0/8', '192.168.1.5:443', '[fd00::/8]:8443', '2001:db8::1'])

  it.each([
    ['10.1.2.3', 80],
    ['10.255.255.255', 1],
    ['192.168.1.5', 443],
    ['fd12::1', 8443],
    ['2001:db8::1', 22],
  ])('admits %s:%i', (host, port) => {
    expect(() => allow.check(host, port)).not.toThrow()
  })

  it.each([
    ['11.0.0.1', 80],
    ['192.168.1.5', 80],
    ['192.168.1.6', 443],
    ['fd12::1', 443],
    ['2001:db8::2', 22],
  ])('denies %s:%i with DestinationDeniedError', (host, port) => {
    expect(() => allow.check(host, port)).toThrow(errors.DestinationDeniedError)
  })

  it.each(['example.com', '10.0.0.0/33', '10.0.0.1:0', '10.0.0.1:70000', 'fd00::/8:443', ''])(
    'rejects the entry %j with a usage error naming --allow',
    (entry) => {
      expect(() => new Allowlist('--allow', [entry])).toThrow(/--allow/)
    },
  )
})

describe('--allow-any', () => {
  const any = new Allowlist('--allow', [], { allowAny: true })

  it.each([
    ['8.8.8.8', 53],
    ['10.1.2.3', 80],
    ['2001:db8::1', 443],
    ['169.253.255.255', 80],
    ['fec0::1', 80],
  ])('admits %s:%i', (host, port) => {
    expect(() => any.check(host, port)).not.toThrow()
  })

  it.each([
    ['169.254.169.254', 80, 'cloud metadata'],
    ['169.254.0.1', 80, 'link-local'],
    ['fd00:ec2::254', 80, 'cloud metadata'],
    ['fe80::1', 22, 'link-local'],
    ['febf::1', 22, 'link-local'],
    ['127.0.0.1', 8080, 'loopback'],
    ['127.255.0.9', 8080, 'loopback'],
    ['::1', 8080, 'loopback'],
    ['::ffff:127.0.0.1', 8080, 'loopback'],
    ['::ffff:169.254.169.254', 80, 'cloud metadata'],
    ['0.0.0.0', 8080, 'this-host'],
    ['::', 8080, 'this-host'],
  ])('still denies %s:%i (%s) with a message naming --allow-any and --allow', (host, port, kind) => {
    expect(() => any.check(host, port)).toThrow(errors.DestinationDeniedError)
    expect(() => any.check(host, port)).toThrow(
      new RegExp(`${kind} address, refused even with --allow-any.*--allow`),
    )
  })

  it('admits a sensitive address only when --allow lists it (address and port)', () => {
    const listed = new Allowlist('--allow', ['127.0.0.1:8080', '169.254.169.254'], { allowAny: true })
    expect(() => listed.check('127.0.0.1', 8080)).not.toThrow()
    expect(() => listed.check('169.254.169.254', 80)).not.toThrow()
    expect(() => listed.check('127.0.0.1', 8081)).toThrow(/loopback/)
    expect(() => listed.check('169.254.169.253', 80)).toThrow(/link-local/)
  })

  it('without --allow-any an empty list admits nothing', () => {
    const none = new Allowlist('--allow', [])
    expect(() => none.check('8.8.8.8', 53)).toThrow(/not in the --allow list/)
    expect(none.allowAny).toBe(false)
  })
})

describe('addresses', () => {
  it('reads Sentient forms and URIs', () => {
    expect(parseIpAddr('--ip-addr', '127.0.0.1:80')).toEqual({ scheme: 'tcp', host: '127.0.0.1', port: 80 })
    expect(parseIpAddr('--ip-addr', '[::1]:80')).toMatchObject({ scheme: 'tcp', port: 80 })
    expect(parseVsockAddr('--vsock-addr', '16:5000')).toEqual({ scheme: 'vsock', cid: 16, port: 5000 })
    expect(parseVsockAddr('--vsock-addr', 'any:5000')).toEqual({
      scheme: 'vsock',
      cid: 0xffffffff,
      port: 5000,
    })
    expect(parseVsockAddr('--vsock-addr', 'unix:///tmp/a.sock')).toEqual({
      scheme: 'unix',
      path: '/tmp/a.sock',
    })
    expect(parseVsockTarget('--vsock', '7')).toEqual({ scheme: 'vsock', cid: 7 })
    expect(parseVsockTarget('--vsock', 'hvsock:///run/v.sock')).toEqual({
      scheme: 'hvsock',
      path: '/run/v.sock',
    })
  })

  it.each([
    () => parseIpAddr('--ip-addr', '127.0.0.1'),
    () => parseVsockAddr('--vsock-addr', '5000'),
    () => parseVsockAddr('--vsock-addr', 'x:y'),
    () => parseVsockTarget('--vsock', 'hvsock://relative'),
  ])('rejects bad input with a UsageError naming the flag (%#)', (parse) => {
    expect(parse).toThrow(errors.UsageError)
    expect(parse).toThrow(/--(ip-addr|vsock-addr|vsock)/)
  })
})

describe('RUST_LOG', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['debug', 'debug'],
    ['off', 'silent'],
    ['warn,pf_proxy=trace', 'trace'],
    ['tokio=debug', undefined],
    ['info,hyper=trace', 'info'],
  ])('%j gives %j', (value, level) => {
    expect(levelFromRustLog(value)).toBe(level)
  })
})

describe('errors', () => {
  it('maps every error to its documented exit code', () => {
    expect(errors.exitCodeOf(new errors.UsageError('x'))).toBe(2)
    expect(errors.exitCodeOf({ code: 'ENCLAVE_VSOCK_INVALID_ADDRESS' })).toBe(2)
    expect(errors.exitCodeOf({ code: 'ENCLAVE_TUNNEL_LISTEN_FAILED' })).toBe(3)
    expect(errors.exitCodeOf(new Error('bug'))).toBe(1)
  })

  it('the README tables list the codes, classes and exit codes', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    for (const error of [new errors.UsageError('x'), new errors.DestinationDeniedError('1.2.3.4:5')]) {
      expect(readme).toMatch(new RegExp(`\\| \`${error.code}\` *\\| \`${error.name}\` *\\|`))
    }
    for (const code of Object.values(errors.EXIT))
      expect(readme).toMatch(new RegExp(`^\\| ${code} +\\|`, 'm'))
  })
})
