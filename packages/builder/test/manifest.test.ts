import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { loadManifest, ManifestInvalidError, ManifestUnreadableError, parseManifest } from '../src/index.js'
import { outcome } from './fixtures.js'

const FULL = `version: v1
name: "example"
target: "example-enclave:latest"
sources:
  app: "app:latest"
  odyn: "./odyn"
  sleeve: "sleeve:1"
signature:
  certificate: keys/cert.pem
  key: keys/key.pem
defaults:
  cpu_count: 4
  memory_mb: 2048
ingress:
  - listen_port: 8000
  - listen_port: 8443
    tls:
      key_file: /k.pem
      cert_file: /c.pem
egress:
  allow:
    - "*.example.com"
    - 10.0.0.0/8
  deny: [evil.example.com]
kms_proxy:
  listen_port: 9999
  endpoints:
    us-east-1: kms.us-east-1.amazonaws.com
api:
  listen_port: 9000
`

function issuesOf(text: string, file = 'enclaver.yaml') {
  const got = outcome(() => parseManifest(text, file))
  if (got.ok) throw new Error('expected the manifest to be rejected')
  expect(got.error).toBeInstanceOf(ManifestInvalidError)
  return (got.error as ManifestInvalidError).issues
}

describe('parseManifest', () => {
  test("accepts enclaver's whole schema and resolves signature paths against the manifest folder", () => {
    const m = parseManifest(FULL, '/srv/app/enclaver.yaml')
    expect(m.sources).toEqual({ app: 'app:latest', odyn: './odyn', sleeve: 'sleeve:1' })
    expect(m.signature).toEqual({ certificate: '/srv/app/keys/cert.pem', key: '/srv/app/keys/key.pem' })
    expect(m.defaults).toEqual({ cpu_count: 4, memory_mb: 2048 })
    expect(m.ingress).toEqual([
      { listen_port: 8000 },
      { listen_port: 8443, tls: { key_file: '/k.pem', cert_file: '/c.pem' } },
    ])
    expect(m.egress).toEqual({
      proxy_port: 10000,
      allow: ['*.example.com', '10.0.0.0/8'],
      deny: ['evil.example.com'],
      transparent: false,
      transparent_port: 10001,
    })
    expect(m.kms_proxy).toEqual({
      listen_port: 9999,
      endpoints: { 'us-east-1': 'kms.us-east-1.amazonaws.com' },
    })
    expect(m.api).toEqual({ listen_port: 9000 })
  })

  test('accepts the ingress extensions (mTLS client CA, attested certificate, PROXY protocol) and type-checks them', () => {
    const m = parseManifest(
      'version: v1\nname: a\ntarget: t\nsources:\n  app: x\ningress:\n  - listen_port: 8443\n    proxy_protocol: true\n    tls:\n      cert_file: /c.pem\n      key_file: /k.pem\n      client_ca_file: /ca.pem\n  - listen_port: 9443\n    tls:\n      attested: true\n      dns_names: [app.local]\n',
    )
    expect(m.ingress).toEqual([
      {
        listen_port: 8443,
        proxy_protocol: true,
        tls: { cert_file: '/c.pem', key_file: '/k.pem', client_ca_file: '/ca.pem' },
      },
      { listen_port: 9443, tls: { attested: true, dns_names: ['app.local'] } },
    ])
    expect(() =>
      parseManifest(
        'version: v1\nname: a\ntarget: t\nsources:\n  app: x\ningress:\n  - listen_port: 1\n    proxy_protocol: "yes"\n',
      ),
    ).toThrow(/ingress\[0\]\.proxy_protocol.*a boolean/s)
  })

  test('applies defaults: cpu_count 2, memory_mb 4096, egress proxy_port 10000', () => {
    const m = parseManifest('version: v1\nname: a\ntarget: t\nsources:\n  app: x\negress:\n  allow: ["**"]\n')
    expect(m.defaults).toEqual({ cpu_count: 2, memory_mb: 4096 })
    expect(m.egress?.proxy_port).toBe(10000)
    expect(m.ingress).toBeUndefined()
  })

  test('egress.transparent: off by default, port 10001 by default, both type-checked', () => {
    const head = 'version: v1\nname: a\ntarget: t\nsources:\n  app: x\negress:\n  allow: [203.0.113.0/24]\n'
    expect(parseManifest(head).egress).toMatchObject({ transparent: false, transparent_port: 10001 })
    expect(parseManifest(`${head}  transparent: true\n`).egress).toMatchObject({
      transparent: true,
      transparent_port: 10001,
    })
    expect(parseManifest(`${head}  transparent: true\n  transparent_port: 15001\n`).egress).toMatchObject({
      transparent: true,
      transparent_port: 15001,
    })
    expect(issuesOf(`${head}  transparent: "yes"\n`)).toEqual([
      expect.objectContaining({
        path: 'egress.transparent',
        line: 8,
        column: 16,
        message: 'expected a boolean, got string "yes"',
      }),
    ])
    expect(issuesOf(`${head}  transparent: true\n  transparent_port: 70000\n`)).toEqual([
      expect.objectContaining({
        path: 'egress.transparent_port',
        message: expect.stringMatching(/u16 \(0-65535\), got number 70000/),
      }),
    ])
  })

  test('egress.transparent: refused without allow rules, or on the proxy port, naming the fix', () => {
    const base = 'version: v1\nname: a\ntarget: t\nsources:\n  app: x\n'
    const noAllow = issuesOf(`${base}egress:\n  transparent: true\n`)
    expect(noAllow).toEqual([expect.objectContaining({ path: 'egress.transparent', line: 7, column: 16 })])
    expect(noAllow[0]!.message).toMatch(/needs egress\.allow.*add IP or CIDR rules.*or remove transparent/)
    expect(issuesOf(`${base}egress:\n  allow: []\n  transparent: true\n`)[0]!.path).toBe('egress.transparent')
    const clash = issuesOf(`${base}egress:\n  proxy_port: 10001\n  allow: [10.0.0.1]\n  transparent: true\n`)
    expect(clash).toEqual([expect.objectContaining({ path: 'egress.transparent_port', line: 7, column: 15 })])
    expect(clash[0]!.message).toBe(
      'egress.transparent_port and egress.proxy_port are both 10001: give transparent_port another port (default 10001)',
    )
    expect(
      issuesOf(
        `${base}egress:\n  proxy_port: 12000\n  allow: [10.0.0.1]\n  transparent: true\n  transparent_port: 12000\n`,
      )[0]!,
    ).toMatchObject({ path: 'egress.transparent_port', line: 10, column: 21 })
    // Off, the same values are fine: nothing listens on transparent_port.
    expect(
      parseManifest(`${base}egress:\n  proxy_port: 10001\n  allow: [10.0.0.1]\n`).egress?.transparent,
    ).toBe(false)
    // 0 means "any free port" for both, so two zeros do not clash.
    expect(
      parseManifest(
        `${base}egress:\n  proxy_port: 0\n  allow: [10.0.0.1]\n  transparent: true\n  transparent_port: 0\n`,
      ).egress?.transparent_port,
    ).toBe(0)
  })

  test('rejects unknown keys at any level with file:line:column and the keys it expected', () => {
    const issues = issuesOf(
      'version: v1\nname: a\ntarget: t\nsources:\n  app: x\n  supervisor: y\nextra: 1\n',
      'm.yaml',
    )
    expect(issues).toEqual([
      expect.objectContaining({
        path: 'sources.supervisor',
        line: 6,
        column: 3,
        message: expect.stringMatching(/unknown key "supervisor".*app, odyn, sleeve/),
      }),
      expect.objectContaining({ path: 'extra', line: 7, column: 1 }),
    ])
    const bad = () =>
      parseManifest('version: v1\nname: a\ntarget: t\nsources:\n  app: x\n  supervisor: y\n', 'm.yaml')
    expect(bad).toThrow(ManifestInvalidError)
    expect(bad).toThrow('m.yaml:6:3: sources.supervisor: unknown key')
    expect(bad).toThrow(expect.objectContaining({ code: 'ENCLAVE_BUILDER_MANIFEST_INVALID' }))
  })

  test('rejects wrong types naming the expected type and where', () => {
    const issues = issuesOf(
      'version: 1\nname: a\ntarget: t\nsources:\n  app: x\ningress:\n  - listen_port: 70000\n  - listen_port: "80"\ndefaults:\n  cpu_count: 1.5\negress:\n  allow: allow-all\n',
    )
    expect(issues.map((i) => [i.path, i.line, i.column])).toEqual([
      ['version', 1, 10],
      ['ingress[0].listen_port', 7, 18],
      ['ingress[1].listen_port', 8, 18],
      ['defaults.cpu_count', 10, 14],
      ['egress.allow', 12, 10],
    ])
    expect(issues[0]!.message).toBe('expected a string, got number 1')
    expect(issues[1]!.message).toMatch(/expected an integer u16 \(0-65535\), got number 70000/)
    expect(issues[4]!.message).toMatch(/expected a list of strings, got string "allow-all"/)
  })

  test('reports missing required keys, YAML syntax errors and non-mapping documents', () => {
    expect(
      issuesOf('version: v1\nname: a\nsources: {}\n')
        .map((i) => i.path)
        .sort(),
    ).toEqual(['sources.app', 'target'])
    expect(issuesOf('version: v1\n  bad: : indent\n')[0]!.line).toBeGreaterThan(0)
    expect(issuesOf('- a list\n')[0]!.message).toMatch(/expected the manifest to be a mapping/)
    expect(issuesOf('').length).toBe(1)
    expect(issuesOf('version: v1\nversion: v2\nname: a\ntarget: t\nsources: {app: x}\n')[0]!.message).toMatch(
      /unique/i,
    )
  })

  test('keys named like Object.prototype members are plain unknown keys or map entries', () => {
    expect(issuesOf('version: v1\nname: a\ntarget: t\nsources: {app: x}\nvalueOf: 1\n')[0]!.path).toBe(
      'valueOf',
    )
    const m = parseManifest(
      'version: v1\nname: a\ntarget: t\nsources: {app: x}\nkms_proxy:\n  listen_port: 1\n  endpoints:\n    __proto__: evil\n',
    )
    expect(Object.getPrototypeOf(m.kms_proxy!.endpoints)).toBe(Object.prototype)
    expect(Object.keys(m.kms_proxy!.endpoints!)).toEqual(['__proto__'])
  })

  test('property: arbitrary text never escapes as anything but ManifestInvalidError or a Manifest', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        const got = outcome(() => parseManifest(text))
        if (got.ok) expect(typeof got.value.sources.app).toBe('string')
        else expect(got.error).toBeInstanceOf(ManifestInvalidError)
      }),
      { numRuns: 300 },
    )
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (value) => {
        const got = outcome(() =>
          parseManifest(
            JSON.stringify({ version: 'v1', name: 'a', target: 't', sources: { app: 'x' }, egress: value }),
          ),
        )
        if (got.ok) expect(got.value.sources.app).toBe('x')
        else {
          // Everything else in the document is valid, so every issue must be about egress.
          expect(got.error).toBeInstanceOf(ManifestInvalidError)
          const issues = (got.error as ManifestInvalidError).issues
          expect(issues.length).toBeGreaterThan(0)
          for (const issue of issues) expect(issue.path).toMatch(/^egress/)
        }
      }),
      { numRuns: 200 },
    )
  })
})

describe('loadManifest', () => {
  test('reads a file, or stdin for "-", and reports an unreadable file with a typed error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'manifest-'))
    try {
      writeFileSync(join(dir, 'enclaver.yaml'), FULL)
      const { manifest, text } = await loadManifest(join(dir, 'enclaver.yaml'))
      expect(manifest.name).toBe('example')
      expect(text).toBe(FULL)
      const { Readable } = await import('node:stream')
      const fromStdin = await loadManifest('-', { stdin: Readable.from([Buffer.from(FULL)]) })
      expect(fromStdin.manifest.target).toBe('example-enclave:latest')
      await expect(loadManifest(join(dir, 'missing.yaml'))).rejects.toBeInstanceOf(ManifestUnreadableError)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
