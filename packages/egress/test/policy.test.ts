import { describe, expect, it } from 'vitest'
import { InvalidHostError, InvalidPolicyError } from '../src/errors.js'
import { parseIp } from '../src/ip.js'
import {
  checkDestination,
  checkResolved,
  compilePolicy,
  type EgressPolicyConfig,
  normalizeHost,
} from '../src/policy.js'

const MANIFEST: EgressPolicyConfig = {
  allow: [
    'example.com',
    '*.wild.test',
    '**.amazonaws.com',
    'foo.*.mid.test',
    'host',
    '203.0.113.0/24',
    '2001:db8::/32',
    '198.51.100.7',
    'Upper.Example.ORG.',
    '0.0.0.0/0',
    '::/0',
  ],
  deny: [
    'evil.example.com',
    '**.blocked.amazonaws.com',
    '203.0.113.66',
    '10.0.0.0/8',
    'fd00::/8',
    '192.0.2.0/24',
  ],
}
const NARROW: EgressPolicyConfig = {
  allow: ['example.com', 'allowed.com', '203.0.113.0/24', '169.254.169.254'],
  deny: ['evil.com'],
}

type Row = [name: string, policy: EgressPolicyConfig, host: string, allowed: boolean, rule?: string]

// Each row: how the in-enclave proxy and the host judge a requested host before any DNS.
const TABLE: Row[] = [
  ['exact name', MANIFEST, 'example.com', true],
  ['exact name is not a suffix match', MANIFEST, 'abc.example.com', false, 'default deny'],
  ['exact name, upper case', MANIFEST, 'EXAMPLE.COM', true],
  ['exact name, trailing dot', MANIFEST, 'example.com.', true],
  ['exact name, mixed case and trailing dot', MANIFEST, 'ExAmPlE.CoM.', true],
  ['two trailing dots are not a name', MANIFEST, 'example.com..', false, 'invalid'],
  ['pattern written in upper case with a dot', MANIFEST, 'upper.example.org', true],
  ['* matches one label', MANIFEST, 'a.wild.test', true],
  ['* does not match two labels', MANIFEST, 'a.b.wild.test', false, 'default deny'],
  ['* does not match the apex', MANIFEST, 'wild.test', false, 'default deny'],
  ['** matches one label', MANIFEST, 'kms.amazonaws.com', true],
  ['** matches many labels', MANIFEST, 'kms.us-east-1.amazonaws.com', true],
  ['** does not match the apex', MANIFEST, 'amazonaws.com', false, 'default deny'],
  ['** suffix must match exactly', MANIFEST, 'kms.amazonaws.com.evil.net', false, 'default deny'],
  ['look-alike suffix', MANIFEST, 'evilamazonaws.com', false, 'default deny'],
  ['* in the middle', MANIFEST, 'foo.x.mid.test', true],
  ['* in the middle, wrong left label', MANIFEST, 'bar.x.mid.test', false, 'default deny'],
  ['* in the middle, two labels', MANIFEST, 'foo.x.y.mid.test', false, 'default deny'],
  [
    'deny wins over ** allow',
    MANIFEST,
    'a.blocked.amazonaws.com',
    false,
    'deny rule "**.blocked.amazonaws.com"',
  ],
  ['deny ** also deep', MANIFEST, 'x.y.blocked.amazonaws.com', false, 'deny rule'],
  ['deny exact name', MANIFEST, 'evil.example.com', false, 'deny rule "evil.example.com"'],
  ['deny exact name, upper case', MANIFEST, 'EVIL.EXAMPLE.COM', false, 'deny rule'],
  ['deny exact name, trailing dot', MANIFEST, 'evil.example.com.', false, 'deny rule'],
  ['unlisted name', MANIFEST, 'google.com', false, 'default deny'],
  ['host name allowed explicitly', MANIFEST, 'host', true],
  ['HOST in upper case', MANIFEST, 'HOST', true],
  ['host only through ** is refused', { allow: ['**'] }, 'host', false, 'host loopback'],
  ['bare ** admits any name', { allow: ['**'] }, 'anything.example', true],
  ['bare ** does not admit IP literals', { allow: ['**'] }, '93.184.216.34', false, 'default deny'],
  ['domain patterns never match IP literals', { allow: ['*.*.*.*'] }, '1.2.3.4', false, 'default deny'],
  ['empty policy denies everything', {}, 'example.com', false, 'default deny'],
  ['IP in allowed CIDR', MANIFEST, '203.0.113.5', true],
  ['IP denied inside allowed CIDR', MANIFEST, '203.0.113.66', false, 'deny rule "203.0.113.66"'],
  ['IP in denied CIDR beats 0.0.0.0/0', MANIFEST, '10.1.2.3', false, 'deny rule "10.0.0.0/8"'],
  ['bare IP allow is /32', NARROW, '198.51.100.8', false, 'default deny'],
  ['IP outside any allow', NARROW, '8.8.8.8', false, 'default deny'],
  ['IPv6 in allowed CIDR', MANIFEST, '2001:db8::1', true],
  ['IPv6 in brackets', MANIFEST, '[2001:db8::1]', true],
  ['IPv6 upper case', MANIFEST, '2001:DB8::1', true],
  ['IPv6 denied CIDR', MANIFEST, 'fd12::1', false, 'deny rule "fd00::/8"'],
  ['metadata address with 0.0.0.0/0 allow', MANIFEST, '169.254.169.254', false, 'instance metadata'],
  ['metadata address allowed explicitly', NARROW, '169.254.169.254', true],
  ['other link-local with only metadata allowed', NARROW, '169.254.1.1', false, 'default deny'],
  ['loopback with 0.0.0.0/0 allow', MANIFEST, '127.0.0.1', false, 'loopback'],
  ['IPv6 loopback with ::/0 allow', MANIFEST, '::1', false, 'loopback ::1'],
  ['IPv6 link-local with ::/0 allow', MANIFEST, 'fe80::1', false, 'link-local'],
  ['IPv6 metadata with ::/0 allow', MANIFEST, 'fd00:ec2::254', false, 'deny rule "fd00::/8"'],
  ['IPv6 metadata without the deny', { allow: ['::/0'] }, '[fd00:ec2::254]', false, 'instance metadata'],
  ['unspecified 0.0.0.0', MANIFEST, '0.0.0.0', false, '0.0.0.0/8'],
  ['decimal integer loopback', MANIFEST, '2130706433', false, 'loopback'],
  ['octal loopback', MANIFEST, '0177.0.0.1', false, 'loopback'],
  ['hex short loopback', MANIFEST, '0x7f.1', false, 'loopback'],
  ['short form loopback', MANIFEST, '127.1', false, 'loopback'],
  ['hex integer loopback', MANIFEST, '0x7f000001', false, 'loopback'],
  ['octal integer loopback', MANIFEST, '017700000001', false, 'loopback'],
  ['percent-encoded loopback', MANIFEST, '%31%32%37.0.0.1', false, 'loopback'],
  ['loopback with a trailing dot', MANIFEST, '127.0.0.1.', false, 'loopback'],
  ['decimal metadata address', MANIFEST, '2852039166', false, 'instance metadata'],
  ['hex metadata address', MANIFEST, '0xa9.0xfe.0xa9.0xfe', false, 'instance metadata'],
  ['decimal form of a denied CIDR', MANIFEST, '167772161', false, 'deny rule "10.0.0.0/8"'],
  ['octal form still reaches an allowed IP', NARROW, '0313.0.0161.5', true],
  ['IPv4-mapped IPv6 metadata', MANIFEST, '::ffff:169.254.169.254', false, 'instance metadata'],
  ['IPv4-mapped IPv6 metadata, hex groups', MANIFEST, '[::ffff:a9fe:a9fe]', false, 'instance metadata'],
  ['IPv4-mapped IPv6 hits an IPv4 deny', MANIFEST, '::ffff:10.0.0.1', false, 'deny rule "10.0.0.0/8"'],
  ['IPv4-mapped IPv6 of an allowed IPv4', NARROW, '::ffff:203.0.113.9', true],
  ['IPv4-mapped IPv6 loopback', MANIFEST, '[::ffff:127.0.0.1]', false, 'loopback'],
  ['IPv6 zone id', MANIFEST, 'fe80::1%eth0', false, 'zone id'],
  ['IPv6 zone id in brackets', MANIFEST, '[fe80::1%25eth0]', false, 'zone id'],
  ['userinfo smuggled into a host', NARROW, 'allowed.com@evil.com', false, 'invalid'],
  ['port smuggled into a host', NARROW, 'allowed.com:443', false, 'invalid'],
  ['path smuggled into a host', NARROW, 'allowed.com/evil.com', false, 'invalid'],
  ['space in a host', NARROW, 'allowed.com evil.com', false, 'invalid'],
  ['five-part dotted number', MANIFEST, '1.2.3.4.5', false, 'invalid'],
  ['out-of-range octet', MANIFEST, '256.1.1.1', false, 'invalid'],
  ['empty host', MANIFEST, '', false, 'invalid'],
  ['a name that embeds an allowed name', NARROW, 'allowed.com.evil.com', false, 'default deny'],
  ['unicode homoglyph turns into punycode', NARROW, 'exаmple.com', false, 'default deny'],
  ['Kelvin sign folds to k', { allow: ['kelvin.test'] }, '\u212Aelvin.test', true],
]

describe('egress policy table', () => {
  it('has at least 60 cases', () => {
    expect(TABLE.length).toBeGreaterThanOrEqual(60)
  })

  for (const [name, config, host, allowed, rule] of TABLE) {
    it(`${allowed ? 'allows' : 'refuses'} ${JSON.stringify(host)}: ${name}`, () => {
      const policy = compilePolicy(config)
      let verdict: { allowed: boolean; rule?: string }
      try {
        verdict = checkDestination(policy, normalizeHost(host))
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidHostError)
        verdict = { allowed: false, rule: `invalid: ${(error as Error).message}` }
      }
      expect(verdict.allowed).toBe(allowed)
      if (rule !== undefined) expect(verdict.rule).toContain(rule)
    })
  }
})

const ip = (text: string) => parseIp(text)!

describe('addresses a name resolves to (host side)', () => {
  const policy = compilePolicy(MANIFEST)
  it.each([
    ['public address', 'example.com', '93.184.216.34', true, undefined],
    ['metadata address (DNS rebinding)', 'example.com', '169.254.169.254', false, 'instance metadata'],
    ['mapped metadata address', 'example.com', '::ffff:169.254.169.254', false, 'instance metadata'],
    ['loopback', 'example.com', '127.0.0.53', false, 'loopback'],
    ['denied CIDR', 'example.com', '10.9.9.9', false, 'deny rule "10.0.0.0/8"'],
    ['denied IPv6 CIDR', 'example.com', 'fd00:ec2::254', false, 'deny rule "fd00::/8"'],
    ['IPv6 link-local', 'example.com', 'fe80::abcd', false, 'link-local'],
    ['host maps to loopback when allowed by name', 'host', '127.0.0.1', true, undefined],
  ] as const)('%s', (_label, name, address, allowed, rule) => {
    const verdict = checkResolved(policy, name, ip(address))
    expect(verdict.allowed).toBe(allowed)
    if (rule) expect(verdict.allowed ? '' : verdict.rule).toContain(rule)
  })

  it('metadata reached by a name only with an explicit IP allow inside the range', () => {
    const explicit = compilePolicy({ allow: ['**.internal', '169.254.169.254'] })
    expect(checkResolved(explicit, 'imds.internal', ip('169.254.169.254')).allowed).toBe(true)
    expect(checkResolved(explicit, 'imds.internal', ip('169.254.169.253')).allowed).toBe(false)
  })
})

describe('policy entries', () => {
  it.each([
    ['https://api.example.com'],
    ['example.com:443'],
    ['a.**.example.com'],
    ['10.0.0.0/33'],
    ['0177.0.0.1'],
    ['bad label!.com'],
    [''],
    ['fe80::1%eth0'],
  ])('rejects %j with a typed error naming the entry', (entry) => {
    expect(() => compilePolicy({ allow: [entry] })).toThrow(InvalidPolicyError)
    try {
      compilePolicy({ allow: [entry] })
    } catch (error) {
      expect((error as InvalidPolicyError).entry).toBe(entry)
      expect((error as Error).message).toContain('egress policy entry')
    }
  })

  it('masks host bits of a CIDR and accepts IPv6 and mapped CIDRs', () => {
    const policy = compilePolicy({ allow: ['10.1.2.3/8', '::ffff:192.168.0.0/112', '2001:db8::/32'] })
    expect(checkDestination(policy, normalizeHost('10.200.0.1')).allowed).toBe(true)
    expect(checkDestination(policy, normalizeHost('192.168.7.7')).allowed).toBe(true)
    expect(checkDestination(policy, normalizeHost('192.169.0.1')).allowed).toBe(false)
    expect(checkDestination(policy, normalizeHost('2001:db8:ffff::1')).allowed).toBe(true)
  })

  it('egress is enabled only with a non-empty allow list', () => {
    expect(compilePolicy({}).enabled).toBe(false)
    expect(compilePolicy({ deny: ['x.com'] }).enabled).toBe(false)
    expect(compilePolicy({ allow: ['x.com'] }).enabled).toBe(true)
  })
})
