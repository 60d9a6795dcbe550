import { describe, expect, it } from 'vitest'
import { pemToDer } from '../src/bytes.js'
import {
  AWS_NITRO_ROOT_G1_PEM,
  AWS_NITRO_ROOT_G1_SHA256,
  createAttestationVerifier,
  fromHex,
  InvalidOptionError,
  parseAttestationDocument,
  toHex,
  VerificationFailedError,
} from '../src/index.js'
import { fingerprintOf } from '../src/x509.js'
import { fixture, VECTORS } from './vectors.js'

const verifier = createAttestationVerifier({ allowDebug: true })

/** A time inside the leaf's window: one second after the document was signed. */
function inside(bytes: Uint8Array): number {
  return parseAttestationDocument(bytes).document.timestamp + 1000
}

function reasons(result: { failures: readonly { reason: string }[] }): string[] {
  return [...new Set(result.failures.map((f) => f.reason))].sort()
}

describe('the pinned AWS root', () => {
  it('is the AWS Nitro Enclaves Root G1 (DER SHA-256 as AWS publishes it)', () => {
    const der = pemToDer(AWS_NITRO_ROOT_G1_PEM)!
    expect(fingerprintOf(der)).toBe(AWS_NITRO_ROOT_G1_SHA256)
    expect(AWS_NITRO_ROOT_G1_SHA256).toBe('641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b')
    expect(toHex(der)).toBe(toHex(pemToDer(fixture('aws_nitro_root_g1.pem').toString('utf8'))!))
  })
})

describe.each(VECTORS)('real document: $name', (vector) => {
  const from = Date.parse(vector.from)
  const to = Date.parse(vector.to)

  it('verifies at a time inside its window, with the fields its README lists', () => {
    const at = inside(vector.bytes)
    expect(at).toBeGreaterThanOrEqual(from)
    expect(at).toBeLessThanOrEqual(to)
    const result = verifier.verify(vector.bytes, { at, pcrs: vector.pcrs })
    expect(result.failures).toEqual([])
    expect(result.ok).toBe(true)
    expect(result.document?.moduleId).toBe(vector.moduleId)
    expect(result.document?.digest).toBe('SHA384')
    expect(result.document?.pcrs.size).toBe(16)
    expect(result.document?.cabundle.length).toBe(4)
    expect(result.cose?.tagged).toBe(false)
  })

  it('verifies at both ends of the leaf window (second precision)', () => {
    const doc = parseAttestationDocument(vector.bytes).document
    // the window's start is the leaf's notBefore; the document is signed a little later
    expect(verifier.verify(vector.bytes, { at: to, clockSkewMs: Number.MAX_SAFE_INTEGER }).ok).toBe(true)
    expect(verifier.verify(vector.bytes, { at: from, clockSkewMs: doc.timestamp - from + 1 }).ok).toBe(true)
  })

  it('fails after its window with "expired" naming the leaf', () => {
    const result = verifier.verify(vector.bytes, { at: to + 1000 })
    expect(result.ok).toBe(false)
    expect(reasons(result)).toEqual(['expired'])
    expect(
      result.failures.some((f) => f.certificate === 4 && /leaf certificate .* expired at/.test(f.message)),
    ).toBe(true)
  })

  it('fails before its window with "expired" (not yet valid)', () => {
    const result = verifier.verify(vector.bytes, { at: from - 1000, clockSkewMs: Number.MAX_SAFE_INTEGER })
    expect(result.ok).toBe(false)
    expect(reasons(result)).toEqual(['expired'])
    expect(result.failures[0]?.message).toMatch(/not valid before/)
  })

  it('fails when any byte of its signature is changed (all 96 positions)', () => {
    const at = inside(vector.bytes)
    const signatureStart = vector.bytes.length - 96
    for (let i = signatureStart; i < vector.bytes.length; i++) {
      const copy = new Uint8Array(vector.bytes)
      copy[i]! ^= 1 << (i % 8)
      const result = verifier.verify(copy, { at })
      expect(result.ok, `byte ${i}`).toBe(false)
      expect(reasons(result), `byte ${i}`).toEqual(['bad-signature'])
    }
  })

  it('fails when a byte of its payload is changed (sampled positions across the payload)', () => {
    const at = inside(vector.bytes)
    // 84 44 A1013822 A0 59 <len16>: the payload starts at byte 10
    expect(toHex(vector.bytes.subarray(0, 8))).toBe('8444a1013822a059')
    const payloadLength = (vector.bytes[8]! << 8) | vector.bytes[9]!
    const positions = new Set<number>()
    for (let k = 0; k < 48; k++) positions.add(10 + Math.floor((k * payloadLength) / 48))
    for (let k = 0; k < 16; k++) positions.add(10 + ((k * 7919 + 13) % payloadLength))
    positions.add(10 + payloadLength - 1)
    for (const i of positions) {
      for (const flip of [0x01, 0x80]) {
        const copy = new Uint8Array(vector.bytes)
        copy[i]! ^= flip
        const result = verifier.verify(copy, { at })
        expect(result.ok, `byte ${i} ^ ${flip}`).toBe(false)
        expect(result.failures.length).toBeGreaterThan(0)
      }
    }
  })

  it('refuses debug mode unless allowed, by PCR0', () => {
    const strict = createAttestationVerifier()
    const result = strict.verify(vector.bytes, { at: inside(vector.bytes) })
    if (vector.debug) {
      expect(reasons(result)).toEqual(['debug-mode'])
    } else {
      expect(result.ok).toBe(true)
    }
  })

  it('accepts the COSE tag 18 form of the same bytes', () => {
    const tagged = new Uint8Array(vector.bytes.length + 1)
    tagged[0] = 0xd2
    tagged.set(vector.bytes, 1)
    const result = verifier.verify(tagged, { at: inside(vector.bytes) })
    expect(result.failures).toEqual([])
    expect(result.cose?.tagged).toBe(true)
  })
})

describe('decoded fields of the real documents', () => {
  const [valid, debug, base64Debug, , , nostr, sequence] = VECTORS
  it('keeps null optional fields as null and byte fields as bytes', () => {
    const a = parseAttestationDocument(valid!.bytes).document
    expect(a.publicKey).toBeNull()
    expect(a.userData).toBeNull()
    expect(a.nonce?.length).toBe(256)
    const b = parseAttestationDocument(debug!.bytes).document
    expect(Buffer.from(b.publicKey!).toString('utf8')).toBe('my super secret key')
    expect(Buffer.from(b.userData!).toString('utf8')).toBe('hello, world!')
    expect(b.nonce).toBeNull()
    const c = parseAttestationDocument(base64Debug!.bytes).document
    expect(c.nonce?.length).toBe(256)
    expect(parseAttestationDocument(nostr!.bytes).document.publicKey?.length).toBe(32)
    // RSA SubjectPublicKeyInfo DER starts with a SEQUENCE
    expect(parseAttestationDocument(sequence!.bytes).document.publicKey?.[0]).toBe(0x30)
  })

  it('gives the timestamp as a number of ms inside the window', () => {
    for (const v of VECTORS) {
      const ts = parseAttestationDocument(v.bytes).document.timestamp
      expect(typeof ts).toBe('number')
      expect(ts).toBeGreaterThan(Date.parse(v.from))
      expect(ts).toBeLessThan(Date.parse(v.to))
    }
  })
})

describe('policy', () => {
  const v = VECTORS[0]!
  const at = inside(v.bytes)

  it('reports every PCR that differs, by index', () => {
    const wrong = 'ab'.repeat(48)
    const result = verifier.verify(v.bytes, { at, pcrs: { 0: wrong, 1: v.pcrs[1]!, 5: wrong, 20: wrong } })
    expect(result.ok).toBe(false)
    expect(result.failures.map((f) => [f.reason, f.pcr])).toEqual([
      ['pcr-mismatch', 0],
      ['pcr-mismatch', 5],
      ['pcr-mismatch', 20],
    ])
    expect(result.failures[2]?.message).toMatch(/absent/)
  })

  it('collects chain and policy failures together', () => {
    const result = createAttestationVerifier().verify(VECTORS[1]!.bytes, {
      at: Date.parse('2030-01-01T00:00:00Z'),
      pcrs: { 4: '00'.repeat(48) },
      nonce: new Uint8Array([1, 2, 3]),
      userData: null,
      publicKey: Buffer.from('my super secret key'),
      maxAgeMs: 60_000,
    })
    expect(reasons(result)).toEqual([
      'debug-mode',
      'expired',
      'nonce-mismatch',
      'pcr-mismatch',
      'too-old',
      'user-data-mismatch',
    ])
    // root (2049) still valid; the regional, zonal, instance and leaf certificates all expired
    expect(result.failures.filter((f) => f.reason === 'expired').map((f) => f.certificate)).toEqual([
      1, 2, 3, 4,
    ])
  })

  it('checks nonce, user_data and public_key equality, and null as "absent"', () => {
    const doc = parseAttestationDocument(v.bytes).document
    expect(verifier.verify(v.bytes, { at, nonce: doc.nonce, userData: null, publicKey: null }).ok).toBe(true)
    const other = new Uint8Array(doc.nonce!)
    other[0]! ^= 1
    expect(reasons(verifier.verify(v.bytes, { at, nonce: other }))).toEqual(['nonce-mismatch'])
    expect(reasons(verifier.verify(v.bytes, { at, userData: new Uint8Array(0) }))).toEqual([
      'user-data-mismatch',
    ])
    expect(reasons(verifier.verify(v.bytes, { at, nonce: null }))).toEqual(['nonce-mismatch'])
  })

  it('enforces a maximum age and refuses a timestamp ahead of the clock', () => {
    const ts = parseAttestationDocument(v.bytes).document.timestamp
    expect(verifier.verify(v.bytes, { at: ts + 5000, maxAgeMs: 10_000 }).ok).toBe(true)
    expect(reasons(verifier.verify(v.bytes, { at: ts + 20_000, maxAgeMs: 10_000 }))).toEqual(['too-old'])
    expect(reasons(verifier.verify(v.bytes, { at: ts - 1, clockSkewMs: 0 }))).toEqual(['timestamp-in-future'])
  })

  it('assert() returns the document or throws VerificationFailedError with every failure', () => {
    expect(verifier.assert(v.bytes, { at }).moduleId).toBe(v.moduleId)
    try {
      verifier.assert(v.bytes, { at: at + 10 * 3600_000, pcrs: { 0: '00'.repeat(48) } })
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(VerificationFailedError)
      const e = err as VerificationFailedError
      expect(e.code).toBe('ENCLAVE_ATTESTATION_VERIFICATION_FAILED')
      expect(new Set(e.failures.map((f) => f.reason))).toEqual(new Set(['expired', 'pcr-mismatch']))
    }
  })

  it('rejects bad options with a typed error naming the option', () => {
    expect(() => createAttestationVerifier({ pcrs: { 0: 'zz' } })).toThrow(InvalidOptionError)
    expect(() => createAttestationVerifier({ pcrs: { 40: '00'.repeat(48) } })).toThrow(/index 40/)
    expect(() => createAttestationVerifier({ maxAgeMs: -1 })).toThrow(/maxAgeMs/)
    expect(() => createAttestationVerifier({ roots: [] })).toThrow(/roots/)
    expect(() => createAttestationVerifier({ roots: ['not a pem'] })).toThrow(/roots\[0\]/)
    expect(() => createAttestationVerifier({ cacheSize: -2 })).toThrow(/cacheSize/)
  })
})

describe('trust anchors', () => {
  it('reports untrusted-root when cabundle[0] is not pinned, with the other checks still done', () => {
    const other = fixture('nostrband/nostrband_eif_signing_cert.der')
    const v = createAttestationVerifier({ roots: [new Uint8Array(other)] })
    const doc = VECTORS[0]!
    const result = v.verify(doc.bytes, { at: inside(doc.bytes) })
    expect(reasons(result)).toEqual(['untrusted-root'])
    expect(result.failures[0]?.message).toContain(AWS_NITRO_ROOT_G1_SHA256)
  })

  it('accepts roots given as PEM text or DER bytes', () => {
    const der = pemToDer(AWS_NITRO_ROOT_G1_PEM)!
    const v = createAttestationVerifier({ roots: [der], allowDebug: true })
    expect(v.verify(VECTORS[0]!.bytes, { at: inside(VECTORS[0]!.bytes) }).ok).toBe(true)
  })

  it('a verifier with caching disabled gives the same verdicts', () => {
    const v = createAttestationVerifier({ cacheSize: 0, allowDebug: true })
    for (const vector of VECTORS) expect(v.verify(vector.bytes, { at: inside(vector.bytes) }).ok).toBe(true)
  })
})

describe('malformed input', () => {
  it('gives a malformed failure, never an exception, for non-documents', () => {
    for (const input of [new Uint8Array(0), new Uint8Array([0x84]), fromHex('a0')!, new Uint8Array(20_000)]) {
      const result = verifier.verify(input)
      expect(result.ok).toBe(false)
      expect(reasons(result)).toEqual(['malformed'])
      expect(result.document).toBeUndefined()
    }
  })
})
