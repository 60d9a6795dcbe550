import { execFileSync } from 'node:child_process'
import { sign as cryptoSign, X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { decode } from 'cborg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  computePcrs,
  createPemSigner,
  describeEif,
  EifBadCertificateError,
  EifBadKeyError,
  type EifSigner,
  EifSignerFailedError,
  readEif,
  signEif,
  writeEif,
} from '../src/index.js'
import { parseCertificate } from '../src/signing.js'
import { type Curve, makeKeyAndCert, sampleSections } from './helpers.js'

let tmp: { path: string; remove: () => void }
const keys = {} as Record<Curve, ReturnType<typeof makeKeyAndCert>>
beforeAll(() => {
  tmp = makeTempDir('eif-signing-')
  for (const curve of ['P-256', 'P-384', 'P-521'] as const) keys[curve] = makeKeyAndCert(tmp.path, curve)
})
afterAll(() => tmp.remove())

const ALG = { 'P-256': ['ES256', -7, 64], 'P-384': ['ES384', -35, 96], 'P-521': ['ES512', -36, 132] } as const

describe('signed EIFs', () => {
  for (const curve of ['P-256', 'P-384', 'P-521'] as const) {
    it(`signs with a ${curve} PEM key and verifies on read (${ALG[curve][0]})`, async () => {
      const { keyPem, certPem } = keys[curve]
      const signer = createPemSigner({ privateKey: keyPem, certificate: certPem })
      expect(signer.algorithm).toBe(ALG[curve][0])
      const path = join(tmp.path, `signed-${curve}.eif`)
      const s = sampleSections()
      const result = await writeEif(path, { ...s, signer })
      const der = new X509Certificate(certPem).raw
      expect(result.pcrs).toEqual(computePcrs({ ...s, certificateDer: der }))
      expect(result.sections.at(-1)?.type).toBe('signature')

      const read = await readEif(path)
      expect(read.pcrs.PCR8).toBe(result.pcrs.PCR8)
      expect(read.signatureCheck).toMatchObject({
        algorithm: ALG[curve][0],
        signatureValid: true,
        pcr0Matches: true,
        certificateTimeValid: true,
        ok: true,
      })

      // The section layout nitro-cli expects: [{signing_certificate: [PEM bytes], signature: [COSE bytes]}].
      const sig = result.sections.at(-1)!
      const section = readFileSync(path).subarray(sig.offset + 12, sig.offset + 12 + sig.size)
      const decoded = decode(section, { useMaps: true }) as Map<string, number[]>[]
      expect(decoded).toHaveLength(1)
      expect([...decoded[0]!.keys()]).toEqual(['signing_certificate', 'signature'])
      expect(Buffer.from(decoded[0]!.get('signing_certificate')!).toString()).toContain('BEGIN CERTIFICATE')
      const cose = decode(Uint8Array.from(decoded[0]!.get('signature')!), { useMaps: true }) as unknown[]
      expect(cose).toHaveLength(4)
      expect(decode(cose[0] as Uint8Array, { useMaps: true })).toEqual(new Map([[1, ALG[curve][1]]]))
      expect((cose[3] as Uint8Array).length).toBe(ALG[curve][2])
      const payload = decode(cose[2] as Uint8Array, { useMaps: true }) as Map<string, unknown>
      expect(payload.get('register_index')).toBe(0)
      expect(Buffer.from(payload.get('register_value') as number[]).toString('hex')).toBe(result.pcrs.PCR0)
    })
  }

  it('produces a COSE_Sign1 that openssl verifies over a Sig_structure built by hand', async () => {
    const { keyPem, certPem } = keys['P-384']
    const path = join(tmp.path, 'interop.eif')
    const result = await writeEif(path, {
      ...sampleSections(),
      signer: createPemSigner({ privateKey: keyPem, certificate: certPem }),
    })
    const sig = result.sections.at(-1)!
    const section = readFileSync(path).subarray(sig.offset + 12, sig.offset + 12 + sig.size)
    const entry = (decode(section, { useMaps: true }) as Map<string, number[]>[])[0]!
    const [prot, , payload, signature] = decode(Uint8Array.from(entry.get('signature')!), {
      useMaps: true,
    }) as Uint8Array[]
    // Byte-exact forms serde_cbor gives nitro-cli: {1: -35} and {"register_index": 0, "register_value": [u8; 48]}.
    expect(Buffer.from(prot!).toString('hex')).toBe('a1013822')
    const uint = (b: number) => (b < 24 ? [b] : [0x18, b])
    const pcr0 = Buffer.from(result.pcrs.PCR0, 'hex')
    const expectedPayload = Buffer.concat([
      Buffer.from([0xa2, 0x6e]),
      Buffer.from('register_index'),
      Buffer.from([0x00, 0x6e]),
      Buffer.from('register_value'),
      Buffer.from([0x98, 0x30]),
      Buffer.from([...pcr0].flatMap(uint)),
    ])
    expect(Buffer.from(payload!).equals(expectedPayload)).toBe(true)
    const bstr = (b: Uint8Array) =>
      Buffer.concat([
        b.length < 24
          ? Buffer.from([0x40 + b.length])
          : b.length < 256
            ? Buffer.from([0x58, b.length])
            : Buffer.from([0x59, b.length >> 8, b.length & 0xff]),
        b,
      ])
    const tbs = Buffer.concat([
      Buffer.from([0x84, 0x6a]),
      Buffer.from('Signature1'),
      bstr(prot!),
      Buffer.from([0x40]),
      bstr(payload!),
    ])
    const derInt = (b: Uint8Array) => {
      let i = 0
      while (i < b.length - 1 && b[i] === 0) i++
      const body =
        b[i]! & 0x80 ? Buffer.concat([Buffer.from([0]), b.subarray(i)]) : Buffer.from(b.subarray(i))
      return Buffer.concat([Buffer.from([0x02, body.length]), body])
    }
    const seq = Buffer.concat([derInt(signature!.subarray(0, 48)), derInt(signature!.subarray(48))])
    writeFileSync(join(tmp.path, 'tbs.bin'), tbs)
    writeFileSync(join(tmp.path, 'sig.der'), Buffer.concat([Buffer.from([0x30, seq.length]), seq]))
    writeFileSync(
      join(tmp.path, 'pub.pem'),
      new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'pem' }),
    )
    const out = execFileSync('openssl', [
      'dgst',
      '-sha384',
      '-verify',
      join(tmp.path, 'pub.pem'),
      '-signature',
      join(tmp.path, 'sig.der'),
      join(tmp.path, 'tbs.bin'),
    ]).toString()
    expect(out.trim()).toBe('Verified OK')
  })

  it('describes a signed image with PCR8, SigningCertificate and SignatureCheck, matching openssl', async () => {
    const { keyPem, certPem } = keys['P-384']
    const path = join(tmp.path, 'describe-signed.eif')
    const result = await writeEif(path, {
      ...sampleSections(),
      signer: createPemSigner({ privateKey: keyPem, certificate: certPem }),
    })
    const d = await describeEif(path)
    expect(Object.keys(d).slice(0, 6)).toEqual([
      'EifVersion',
      'Measurements',
      'IsSigned',
      'SigningCertificate',
      'CheckCRC',
      'SignatureCheck',
    ])
    expect(d.Measurements.PCR8).toBe(result.pcrs.PCR8)
    expect(d.IsSigned).toBe(true)
    expect(d.SignatureCheck).toBe(true)
    const certPath = join(tmp.path, 'describe-cert.pem')
    writeFileSync(certPath, certPem)
    const text = execFileSync('openssl', ['x509', '-in', certPath, '-noout', '-text']).toString()
    const x = new X509Certificate(certPem)
    expect(d.SigningCertificate).toEqual({
      IssuerName: { commonName: 'eif signing test', countryName: 'US', organizationName: 'Enclave Test' },
      Algorithm: 'ecdsa-with-SHA384',
      NotBefore: x.validFrom,
      NotAfter: x.validTo,
      Signature: expect.any(String),
    })
    expect(text).toContain(`Not Before: ${x.validFrom}`)
    // openssl prints the signature value as lowercase hex pairs joined by ':' after the algorithm.
    const sigHex = text.split('Signature Value:')[1]!.replace(/[\s:]/g, '').toLowerCase()
    expect(d.SigningCertificate!.Signature.replace(/:/g, '').toLowerCase()).toBe(sigHex)
  })

  it('reports SignatureCheck false when the certificate is not valid at `now`', async () => {
    const { keyPem, certPem } = keys['P-256']
    const path = join(tmp.path, 'expired.eif')
    await writeEif(path, {
      ...sampleSections(),
      signer: createPemSigner({ privateKey: keyPem, certificate: certPem }),
    })
    const later = new Date(Date.now() + 365 * 24 * 3600 * 1000)
    const read = await readEif(path, { now: later })
    expect(read.signatureCheck).toMatchObject({
      signatureValid: true,
      pcr0Matches: true,
      certificateTimeValid: false,
      ok: false,
    })
    expect(read.signatureCheck?.problem).toMatch(/valid from/)
    expect((await describeEif(path, { now: later })).SignatureCheck).toBe(false)
  })

  it('reports SignatureCheck false when a measured byte changes after signing', async () => {
    const { keyPem, certPem } = keys['P-256']
    const path = join(tmp.path, 'tampered.eif')
    const r = await writeEif(path, {
      ...sampleSections(),
      signer: createPemSigner({ privateKey: keyPem, certificate: certPem }),
    })
    const bytes = readFileSync(path)
    bytes[r.sections[0]!.offset + 12]! ^= 1
    writeFileSync(path, bytes)
    const read = await readEif(path, { checkCrc: false })
    expect(read.signatureCheck).toMatchObject({ signatureValid: true, pcr0Matches: false, ok: false })
  })

  it('reports SignatureCheck false when the COSE signature bytes are altered', async () => {
    const { keyPem, certPem } = keys['P-384']
    const path = join(tmp.path, 'badsig.eif')
    const r = await writeEif(path, {
      ...sampleSections(),
      signer: createPemSigner({ privateKey: keyPem, certificate: certPem }),
    })
    const bytes = readFileSync(path)
    const sig = r.sections.at(-1)!
    // The last CBOR integer of the section is the last byte of the r‖s signature.
    const last = sig.offset + 12 + sig.size - 1
    bytes[last]! ^= 1 // stays a valid CBOR integer (0..23 or a 0x18-prefixed byte)
    writeFileSync(path, bytes)
    const read = await readEif(path, { checkCrc: false })
    expect(read.signatureCheck?.signatureValid).toBe(false)
    expect(read.signatureCheck?.ok).toBe(false)
  })

  it('signs through a pluggable signer (as a KMS key would)', async () => {
    const { privateKey, certPem } = keys['P-521']
    const calls: Buffer[] = []
    const signer: EifSigner = {
      algorithm: 'ES512',
      certificateDer: new X509Certificate(certPem).raw,
      async sign(tbs) {
        calls.push(tbs)
        return cryptoSign('sha512', tbs, { key: privateKey, dsaEncoding: 'ieee-p1363' })
      },
    }
    const path = join(tmp.path, 'kms.eif')
    await writeEif(path, { ...sampleSections(), signer })
    expect(calls).toHaveLength(1)
    // Sig_structure: ["Signature1", protected, h'', payload]
    expect((decode(calls[0]!) as unknown[])[0]).toBe('Signature1')
    expect((await readEif(path)).signatureCheck?.ok).toBe(true)
  })

  it('rejects a signer that returns DER or throws, without leaving a file', async () => {
    const { privateKey, certPem } = keys['P-256']
    const der = new X509Certificate(certPem).raw
    const path = join(tmp.path, 'der.eif')
    const derSigner: EifSigner = {
      algorithm: 'ES256',
      certificateDer: der,
      sign: async (tbs) => cryptoSign('sha256', tbs, privateKey),
    }
    await expect(writeEif(path, { ...sampleSections(), signer: derSigner })).rejects.toThrow(/raw r‖s/)
    const throwing: EifSigner = { ...derSigner, sign: async () => Promise.reject(new Error('KMS down')) }
    const err = await writeEif(path, { ...sampleSections(), signer: throwing }).catch((e) => e)
    expect(err).toBeInstanceOf(EifSignerFailedError)
    expect((err as Error).cause).toMatchObject({ message: 'KMS down' })
    expect(() => readFileSync(path)).toThrow()
  })

  it('rejects a key that does not match the certificate, and non-EC keys', () => {
    expect(() =>
      createPemSigner({ privateKey: keys['P-256'].keyPem, certificate: keys['P-384'].certPem }),
    ).toThrow(EifBadCertificateError)
    expect(() => createPemSigner({ privateKey: 'not a key', certificate: keys['P-256'].certPem })).toThrow(
      EifBadKeyError,
    )
    expect(() => createPemSigner({ privateKey: keys['P-256'].keyPem, certificate: 'garbage' })).toThrow(
      EifBadCertificateError,
    )
  })

  it('a signing certificate whose public key does not decode is a typed error (found by fuzzing)', () => {
    // The certificate's EC point starts with 0x04 (uncompressed); 0x41 is no valid point encoding.
    // OpenSSL still parses such a certificate and fails only when its key is read.
    const certificate = new X509Certificate(keys['P-384'].certPem)
    const point = certificate.publicKey.export({ type: 'spki', format: 'der' }).subarray(-97)
    const der = Buffer.from(certificate.raw)
    const at = der.indexOf(point)
    expect(at).toBeGreaterThan(0)
    der[at] = 0x41
    expect(() => new X509Certificate(der).publicKey).toThrow() // what the reader used to leak
    expect(() => parseCertificate(der)).toThrow(EifBadCertificateError)
    expect(() => parseCertificate(der)).toThrow(/readable public key/)
  })

  it('keeps the 32nd section slot for the signature', async () => {
    const signer = createPemSigner({ privateKey: keys['P-256'].keyPem, certificate: keys['P-256'].certPem })
    const path = join(tmp.path, 'full.eif')
    const ramdisks = Array.from({ length: 29 }, (_, i) => Buffer.from(`r${i}`))
    await expect(writeEif(path, { ...sampleSections(), ramdisks, signer })).rejects.toThrow(
      /at most 32 sections/,
    )
    const r = await writeEif(path, { ...sampleSections(), ramdisks: ramdisks.slice(0, 28), signer })
    expect(r.sections).toHaveLength(32)
    expect((await readEif(path)).signatureCheck?.ok).toBe(true)
  })

  it('rejects a pluggable signer whose algorithm does not fit the certificate key', async () => {
    const signer: EifSigner = {
      algorithm: 'ES384',
      certificateDer: new X509Certificate(keys['P-256'].certPem).raw,
      sign: async () => Buffer.alloc(96),
    }
    await expect(writeEif(join(tmp.path, 'mismatch.eif'), { ...sampleSections(), signer })).rejects.toThrow(
      /needs a secp384r1 key/,
    )
  })
})

describe('signEif (nitro-cli sign-eif)', () => {
  it('signs an unsigned image, keeping every other byte-level section and PCR0-2', async () => {
    const input = join(tmp.path, 'to-sign.eif')
    const output = join(tmp.path, 'signed-copy.eif')
    const original = await writeEif(input, {
      ...sampleSections(),
      metadata: { imageName: 'keep-me' },
      arch: 'aarch64',
    })
    const { keyPem, certPem } = keys['P-384']
    const result = await signEif(input, output, {
      signer: createPemSigner({ privateKey: keyPem, certificate: certPem }),
    })
    expect(result.pcrs).toMatchObject({
      PCR0: original.pcrs.PCR0,
      PCR1: original.pcrs.PCR1,
      PCR2: original.pcrs.PCR2,
    })
    expect(result.pcrs.PCR8).toBeDefined()
    const a = readFileSync(input)
    const b = readFileSync(output)
    // Everything between the header and the old end is identical; the signature is appended.
    expect(b.subarray(548, a.length).equals(a.subarray(548))).toBe(true)
    const read = await readEif(output)
    expect(read.header.arch).toBe('aarch64')
    expect(read.metadata?.ImageName).toBe('keep-me')
    expect(read.signatureCheck?.ok).toBe(true)
  })

  it('re-signs in place with another key, replacing the signature', async () => {
    const path = join(tmp.path, 'resign.eif')
    const first = await writeEif(path, {
      ...sampleSections(),
      signer: createPemSigner({ privateKey: keys['P-256'].keyPem, certificate: keys['P-256'].certPem }),
    })
    const second = await signEif(path, path, {
      signer: createPemSigner({ privateKey: keys['P-521'].keyPem, certificate: keys['P-521'].certPem }),
    })
    expect(second.pcrs.PCR0).toBe(first.pcrs.PCR0)
    expect(second.pcrs.PCR8).not.toBe(first.pcrs.PCR8)
    const read = await readEif(path)
    expect(read.sections.filter((s) => s.type === 'signature')).toHaveLength(1)
    expect(read.signatureCheck).toMatchObject({ algorithm: 'ES512', ok: true })
  })

  it('refuses to sign a corrupt image', async () => {
    const path = join(tmp.path, 'corrupt-sign.eif')
    const r = await writeEif(path, sampleSections())
    const bytes = readFileSync(path)
    bytes[r.sections[3]!.offset + 13]! ^= 1
    writeFileSync(path, bytes)
    const out = join(tmp.path, 'never.eif')
    await expect(
      signEif(path, out, {
        signer: createPemSigner({ privateKey: keys['P-256'].keyPem, certificate: keys['P-256'].certPem }),
      }),
    ).rejects.toMatchObject({ code: 'ENCLAVE_EIF_CRC_MISMATCH' })
    expect(() => readFileSync(out)).toThrow()
  })
})
