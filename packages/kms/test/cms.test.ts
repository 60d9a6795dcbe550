import { execFileSync } from 'node:child_process'
import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  CMS_MAX_SIZE,
  KmsError,
  openCiphertextForRecipient,
  parseCiphertextForRecipient,
} from '../src/index.js'
import { sealForRecipient } from '../src/seal.js'

const VECTORS = '/work/shared/vectors/kms-cms'
const read = (name: string) => new Uint8Array(readFileSync(join(VECTORS, name)))
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

describe('CiphertextForRecipient parsing (real KMS samples)', () => {
  it('extracts key, IV and the constructed [0] content of input_ber.bin', () => {
    const envelope = parseCiphertextForRecipient(read('input_ber.bin'))
    expect(hex(envelope.encryptedKey)).toBe(hex(read('encrypted_key_out.bin')))
    expect(hex(envelope.iv)).toBe(hex(read('iv_out.bin')))
    expect(hex(envelope.encryptedContent)).toBe(hex(read('ciphertext_out.bin')))
    expect(envelope.subjectKeyIdentifier?.length).toBe(32)
  })

  it('extracts the primitive [0] IMPLICIT content of input_ber_w_ctx.bin', () => {
    const envelope = parseCiphertextForRecipient(read('input_ber_w_ctx.bin'))
    expect(hex(envelope.encryptedKey)).toBe(hex(read('encrypted_key_out_w_ctx.bin')))
    expect(hex(envelope.iv)).toBe(hex(read('iv_out_w_ctx.bin')))
    expect(hex(envelope.encryptedContent)).toBe(hex(read('ciphertext_out_w_ctx.bin')))
  })
})

describe('CiphertextForRecipient decryption', () => {
  const expected = JSON.parse(readFileSync(join(VECTORS, 'synthetic/expected.json'), 'utf8'))
  const syntheticKey = createPrivateKey(readFileSync(join(VECTORS, 'synthetic/recipient_key.pem')))

  it('decrypts the synthetic envelope to its plaintext', () => {
    const cms = read('synthetic/cms_enveloped.ber')
    const envelope = parseCiphertextForRecipient(cms)
    expect(hex(envelope.iv)).toBe(expected.iv_hex)
    expect(hex(envelope.subjectKeyIdentifier!)).toBe(expected.rid_ski_hex)
    expect(hex(openCiphertextForRecipient(cms, syntheticKey))).toBe(expected.plaintext_hex)
    expect(hex(openCiphertextForRecipient(cms, syntheticKey))).toBe(hex(read('synthetic/plaintext.bin')))
  })

  it('refuses the envelope with another key (DecryptFailedError)', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 })
    expect(() => openCiphertextForRecipient(read('synthetic/cms_enveloped.ber'), other.privateKey)).toThrow(
      expect.objectContaining({ code: 'ENCLAVE_KMS_DECRYPT_FAILED' }),
    )
  })

  it('seals envelopes that round-trip and that openssl cms -decrypt opens', async () => {
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const plaintext = new TextEncoder().encode('a data key, 32 bytes long.......')
    const cms = sealForRecipient(plaintext, keys.publicKey)
    expect(hex(openCiphertextForRecipient(cms, keys.privateKey))).toBe(hex(plaintext))
    const envelope = parseCiphertextForRecipient(cms)
    expect(envelope.encryptedKey.length).toBe(256)
    expect(envelope.encryptedContent.length).toBe(48)

    const dir = makeTempDir('kms-cms-')
    writeFileSync(join(dir.path, 'key.pem'), keys.privateKey.export({ format: 'pem', type: 'pkcs8' }))
    writeFileSync(join(dir.path, 'cms.der'), cms)
    const out = execFileSync('openssl', [
      'cms',
      '-decrypt',
      '-inform',
      'DER',
      '-in',
      join(dir.path, 'cms.der'),
      '-inkey',
      join(dir.path, 'key.pem'),
    ])
    expect(hex(out)).toBe(hex(plaintext))
    dir.remove()
  })

  it('opens what openssl cms -encrypt makes with RSA-OAEP SHA-256 and AES-256-CBC', async () => {
    const dir = makeTempDir('kms-cms-')
    const key = join(dir.path, 'key.pem')
    const cert = join(dir.path, 'cert.pem')
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-subj',
        '/CN=enclave',
        '-days',
        '1',
        '-addext',
        'subjectKeyIdentifier=hash',
      ],
      { stdio: 'ignore' },
    )
    writeFileSync(join(dir.path, 'in.bin'), 'plaintext from openssl')
    const cms = execFileSync('openssl', [
      'cms',
      '-encrypt',
      '-binary',
      '-outform',
      'DER',
      '-in',
      join(dir.path, 'in.bin'),
      '-aes-256-cbc',
      '-keyid',
      '-recip',
      cert,
      '-keyopt',
      'rsa_padding_mode:oaep',
      '-keyopt',
      'rsa_oaep_md:sha256',
      '-keyopt',
      'rsa_mgf1_md:sha256',
    ])
    const opened = openCiphertextForRecipient(new Uint8Array(cms), createPrivateKey(readFileSync(key)))
    expect(Buffer.from(opened).toString()).toBe('plaintext from openssl')
    dir.remove()
  })
})

describe('CiphertextForRecipient refusals', () => {
  const sample = read('input_ber.bin')

  it('names an oversized input', () => {
    expect(() => parseCiphertextForRecipient(new Uint8Array(CMS_MAX_SIZE + 1))).toThrow(
      expect.objectContaining({ code: 'ENCLAVE_KMS_MALFORMED_CMS', message: expect.stringMatching(/limit/) }),
    )
  })

  it('refuses AES-128-CBC content (a substituted algorithm)', () => {
    // 2.16.840.1.101.3.4.1.42 → .1.2 (aes128-CBC): the last OID byte 0x2a becomes 0x02.
    const oid = Buffer.from('060960864801650304012a', 'hex')
    const at = Buffer.from(sample).indexOf(oid)
    expect(at).toBeGreaterThan(0)
    const changed = new Uint8Array(sample)
    changed[at + oid.length - 1] = 0x02
    expect(() => parseCiphertextForRecipient(changed)).toThrow(
      expect.objectContaining({
        code: 'ENCLAVE_KMS_UNSUPPORTED_CMS',
        message: expect.stringMatching(/AES-256-CBC/),
      }),
    )
  })

  it('refuses an OAEP hash other than SHA-256', () => {
    const sha256 = Buffer.from('0609608648016503040201', 'hex')
    const at = Buffer.from(sample).indexOf(sha256)
    const changed = new Uint8Array(sample)
    changed[at + sha256.length - 1] = 0x02 // sha384
    expect(() => parseCiphertextForRecipient(changed)).toThrow(
      expect.objectContaining({
        code: 'ENCLAVE_KMS_UNSUPPORTED_CMS',
        message: expect.stringMatching(/SHA-256/),
      }),
    )
  })

  it('fuzz: random bytes and mutated samples only ever throw KmsError', () => {
    const key = createPrivateKey(readFileSync(join(VECTORS, 'synthetic/recipient_key.pem')))
    const synthetic = read('synthetic/cms_enveloped.ber')
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc.tuple(fc.nat(synthetic.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
            const copy = new Uint8Array(synthetic)
            copy[i] = v
            return copy
          }),
          fc.nat(synthetic.length).map((n) => synthetic.subarray(0, n)),
        ),
        (input) => {
          try {
            openCiphertextForRecipient(input, key)
          } catch (err) {
            expect(err).toBeInstanceOf(KmsError)
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})
