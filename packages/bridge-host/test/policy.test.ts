import { describe, expect, it } from 'vitest'
import {
  checkEnvPatterns,
  createDestinationPolicy,
  InvalidOptionError,
  isProtectedAddress,
  parseTarget,
  selectEnv,
} from '../src/index.js'

describe('env allowlist', () => {
  it('forwards exact names and prefixes only, sorted', () => {
    const env = { APP_B: '2', APP_A: '1', APPX: 'no', LOG_LEVEL: 'debug', AWS_SECRET_ACCESS_KEY: 'never' }
    expect(selectEnv(env, ['APP_*', 'LOG_LEVEL'])).toEqual({ APP_A: '1', APP_B: '2', LOG_LEVEL: 'debug' })
    expect(Object.keys(selectEnv(env, ['APP_*']))).toEqual(['APP_A', 'APP_B'])
    expect(selectEnv(env, [])).toEqual({})
    expect(Object.keys(selectEnv(env, [], true))).toHaveLength(5)
  })

  it('rejects patterns that are not NAME or PREFIX*', () => {
    for (const bad of ['*', 'A*B', 'has space', '1ABC', '']) {
      expect(() => checkEnvPatterns([bad])).toThrow(InvalidOptionError)
    }
    expect(checkEnvPatterns([' APP_* ', 'X'])).toEqual(['APP_*', 'X'])
  })
})

describe('destination allowlist', () => {
  const policy = createDestinationPolicy([
    'api.example.com',
    '*.svc.example.com',
    '**.amazonaws.com:443',
    '10.0.0.0/8',
    '192.168.1.10:8080',
    '[::1]:9000',
  ])

  it.each([
    ['api.example.com', 443, true],
    ['API.Example.com.', 80, true],
    ['x.api.example.com', 443, false],
    ['a.svc.example.com', 1, true],
    ['a.b.svc.example.com', 1, false],
    ['svc.example.com', 1, false],
    ['kms.us-east-1.amazonaws.com', 443, true],
    ['kms.us-east-1.amazonaws.com', 80, false],
    ['amazonaws.com', 443, false],
    ['10.1.2.3', 22, true],
    ['11.1.2.3', 22, false],
    ['192.168.1.10', 8080, true],
    ['192.168.1.10', 8081, false],
    ['::1', 9000, true],
    ['::1', 9001, false],
    ['169.254.169.254', 80, false],
  ])('%s:%i allowed=%s', (host, port, allowed) => {
    expect(policy.allows(host, port)).toBe(allowed)
  })

  it('rejects malformed patterns naming them', () => {
    expect(() => createDestinationPolicy(['10.0.0.0/33'])).toThrow(/10.0.0.0\/33/)
    expect(() => createDestinationPolicy(['host:99999'])).toThrow(/port/)
    expect(() => createDestinationPolicy(['bad host'])).toThrow(InvalidOptionError)
  })
})

describe('parseTarget', () => {
  it.each([
    ['example.com:443', { host: 'example.com', port: 443 }],
    ['127.0.0.1:80', { host: '127.0.0.1', port: 80 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['example.com', undefined],
    ['example.com:0', undefined],
    ['example.com:70000', undefined],
    ['::1:80', undefined],
    ['[nope]:80', undefined],
    ['a b:80', undefined],
  ])('%s', (text, expected) => {
    expect(parseTarget(text)).toEqual(expected)
  })
})

describe('protected addresses (never reached through an allowed name)', () => {
  it('covers loopback, link-local, metadata, unspecified and their IPv4-mapped forms', () => {
    for (const ip of [
      '127.0.0.1',
      '127.8.9.10',
      '169.254.169.254',
      '169.254.1.1',
      '0.0.0.0',
      '::1',
      '::',
      'fe80::1',
      'fd00:ec2::254',
      '::ffff:169.254.169.254',
      '::ffff:127.0.0.1',
    ]) {
      expect(isProtectedAddress(ip), ip).toBe(true)
    }
    for (const ip of ['10.0.0.1', '93.184.216.34', '2001:db8::1', 'fd00:ec2::253', 'not-an-ip']) {
      expect(isProtectedAddress(ip), ip).toBe(false)
    }
  })
})
