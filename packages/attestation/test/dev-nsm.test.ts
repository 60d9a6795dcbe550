import { execFileSync } from 'node:child_process'
import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { afterAll, describe, expect, it } from 'vitest'
import { derToPem } from '../src/bytes.js'
import { decodeCbor } from '../src/cbor.js'
import { openDevCa } from '../src/dev-ca.js'
import { encodeAttestationPayload } from '../src/document-encode.js'
import {
  createAttestationVerifier,
  createDevNsm,
  DevCaError,
  decodeCoseSign1,
  extendPcr,
  NsmInputTooLargeError,
  NsmInvalidArgumentError,
  NsmInvalidIndexError,
  NsmReadOnlyIndexError,
  NsmUnavailableError,
  parseAttestationDocument,
  pcr4FromInstanceId,
  signCoseSign1,
  toHex,
} from '../src/index.js'
import { generateEcKey, issueCertificate } from '../src/x509-issue.js'

const temp = makeTempDir('attestation-dev-nsm-')
afterAll(() => temp.remove())
const dirA = join(temp.path, 'a')
const dirB = join(temp.path, 'b')
const PCR0 = 'ab'.repeat(48)

function reasons(result: { failures: readonly { reason: string }[] }): string[] {
  return [...new Set(result.failures.map((f) => f.reason))].sort()
}

describe('dev NSM', () => {
  it('persists its CA (0600 keys) and reuses it', async () => {
    const one = await createDevNsm({ dir: dirA })
    const two = await createDevNsm({ dir: dirA })
    expect(two.rootCertificatePem).toBe(one.rootCertificatePem)
    expect(statSync(join(dirA, 'ca.pem')).mode & 0o777).toBe(0o600)
    expect(statSync(join(dirA, 'root.crt.pem')).mode & 0o777).toBe(0o644)
    await one.getAttestationDocument()
    expect(statSync(join(dirA, 'leaf.pem')).mode & 0o777).toBe(0o600)
    expect(statSync(dirA).mode & 0o777).toBe(0o700)
  })

  it('concurrent first runs on one folder agree on a single root', async () => {
    const dir = join(temp.path, 'race')
    const nsms = await Promise.all([createDevNsm({ dir }), createDevNsm({ dir }), createDevNsm({ dir })])
    expect(new Set(nsms.map((n) => n.rootCertificatePem)).size).toBe(1)
  })

  it('signs documents in the real format that verify through the same path as real ones', async () => {
    const nsm = await createDevNsm({ dir: dirA, pcrs: { 0: PCR0 } })
    const nonce = new Uint8Array([1, 2, 3])
    const doc = await nsm.getAttestationDocument({ nonce, userData: new Uint8Array(0) })
    expect(toHex(doc.subarray(0, 8))).toBe('8444a1013822a059')
    const cose = decodeCoseSign1(doc)
    expect(cose.signature.length).toBe(96)
    expect(cose.payload[0]).toBe(0xa9)
    const payload = decodeCbor(cose.payload, 'payload') as Map<string, unknown>
    expect([...payload.keys()]).toEqual([
      'module_id',
      'digest',
      'timestamp',
      'pcrs',
      'certificate',
      'cabundle',
      'public_key',
      'user_data',
      'nonce',
    ])
    // the timestamp is always an 8-byte uint, as the NSM writes it
    const tsKey = Buffer.from('6974696d657374616d70', 'hex')
    const at = Buffer.from(cose.payload).indexOf(tsKey)
    expect(cose.payload[at + tsKey.length]).toBe(0x1b)
    const { document } = parseAttestationDocument(doc)
    expect(document.moduleId).toBe(nsm.moduleId)
    expect([...document.pcrs.keys()]).toEqual([...Array(16).keys()])
    expect(toHex(document.pcrs.get(4)!)).toBe(toHex(pcr4FromInstanceId(nsm.moduleId.split('-enc')[0]!)))
    expect(document.cabundle.length).toBe(2)
    expect(document.publicKey).toBeNull()
    expect(document.userData?.length).toBe(0)

    const verifier = createAttestationVerifier({ roots: [nsm.rootCertificatePem] })
    const result = verifier.verify(doc, { pcrs: { 0: PCR0 }, nonce, publicKey: null, maxAgeMs: 60_000 })
    expect(result.failures).toEqual([])
    expect(reasons(createAttestationVerifier().verify(doc))).toEqual(['untrusted-root'])
    expect(reasons(verifier.verify(doc, { at: Date.now() + 4 * 3600_000 }))).toEqual(['expired'])
  })

  it('refuses its own default (all-zero PCR0) documents as debug mode unless allowed', async () => {
    const nsm = await createDevNsm({ dir: dirA })
    const doc = await nsm.getAttestationDocument()
    const verifier = createAttestationVerifier({ roots: [nsm.rootCertificatePem] })
    expect(reasons(verifier.verify(doc))).toEqual(['debug-mode'])
    expect(verifier.verify(doc, { allowDebug: true }).ok).toBe(true)
  })

  it('extends and locks PCRs like the device, with its error names', async () => {
    const nsm = await createDevNsm({ dir: dirA })
    const data = new Uint8Array([9, 9, 9])
    const value = await nsm.extendPcr(16, data)
    expect(toHex(value)).toBe(toHex(extendPcr(new Uint8Array(48), data)))
    expect(await nsm.describePcr(16)).toEqual({ locked: false, value })
    await nsm.lockPcr(16)
    expect((await nsm.describePcr(16)).locked).toBe(true)
    await expect(nsm.extendPcr(16, data)).rejects.toBeInstanceOf(NsmReadOnlyIndexError)
    await expect(nsm.extendPcr(3, data)).rejects.toBeInstanceOf(NsmReadOnlyIndexError)
    await expect(nsm.lockPcr(0)).rejects.toBeInstanceOf(NsmReadOnlyIndexError)
    await expect(nsm.describePcr(32)).rejects.toBeInstanceOf(NsmInvalidIndexError)
    await expect(nsm.lockPcrs(33)).rejects.toBeInstanceOf(NsmInvalidIndexError)
    const description = await nsm.describeNsm()
    expect(description).toMatchObject({ moduleId: nsm.moduleId, maxPcrs: 32, digest: 'SHA384' })
    expect(description.lockedPcrs).toEqual([...Array(17).keys()])
    // a document carries every locked PCR
    const { document } = parseAttestationDocument(await nsm.getAttestationDocument())
    expect(toHex(document.pcrs.get(16)!)).toBe(toHex(value))
    await nsm.lockPcrs(20)
    expect((await nsm.describeNsm()).lockedPcrs).toEqual([...Array(20).keys()])
  })

  it('takes PCRs from options or setPcr (e.g. an EIF’s measurements)', async () => {
    const nsm = await createDevNsm({ dir: dirA, pcrs: { 0: PCR0, 1: new Uint8Array(48).fill(1) } })
    nsm.setPcr(2, 'cd'.repeat(48))
    const { document } = parseAttestationDocument(await nsm.getAttestationDocument())
    expect(toHex(document.pcrs.get(0)!)).toBe(PCR0)
    expect(toHex(document.pcrs.get(1)!)).toBe('01'.repeat(48))
    expect(toHex(document.pcrs.get(2)!)).toBe('cd'.repeat(48))
    expect(() => nsm.setPcr(2, 'abc')).toThrow(/48 bytes/)
    await expect(createDevNsm({ dir: dirA, moduleId: 'enclave' })).rejects.toThrow(/moduleId/)
  })

  it('enforces the 1024-byte field and 4096-byte request limits', async () => {
    const nsm = await createDevNsm({ dir: dirA })
    const k = new Uint8Array(1024).fill(7)
    const doc = await nsm.getAttestationDocument({ userData: k, nonce: k, publicKey: k })
    expect(parseAttestationDocument(doc).document.nonce?.length).toBe(1024)
    await expect(nsm.getAttestationDocument({ userData: new Uint8Array(1025) })).rejects.toBeInstanceOf(
      NsmInvalidArgumentError,
    )
    await expect(nsm.extendPcr(17, new Uint8Array(5000))).rejects.toBeInstanceOf(NsmInputTooLargeError)
    expect((await nsm.getRandom()).length).toBe(256)
    await nsm.close()
    await expect(nsm.getRandom()).rejects.toBeInstanceOf(NsmUnavailableError)
  })

  it('renews the leaf when it nears expiry and dates documents by its clock', async () => {
    let clock = Date.now()
    const nsm = await createDevNsm({ dir: dirB, now: () => clock, pcrs: { 0: PCR0 } })
    const first = parseAttestationDocument(await nsm.getAttestationDocument()).document
    clock += 5 * 3600_000
    const second = parseAttestationDocument(await nsm.getAttestationDocument()).document
    expect(second.timestamp).toBe(clock)
    expect(toHex(second.certificate)).not.toBe(toHex(first.certificate))
    const verifier = createAttestationVerifier({ roots: [nsm.rootCertificatePem] })
    const doc = await nsm.getAttestationDocument()
    expect(verifier.verify(doc, { at: clock }).ok).toBe(true)
    expect(reasons(verifier.verify(doc, { at: clock + 4 * 3600_000 }))).toEqual(['expired'])
  })

  it('reports a corrupt CA file as DevCaError naming the file and the fix', async () => {
    const dir = join(temp.path, 'corrupt')
    await createDevNsm({ dir })
    writeFileSync(join(dir, 'ca.pem'), 'garbage')
    await expect(createDevNsm({ dir })).rejects.toThrow(DevCaError)
    await expect(createDevNsm({ dir })).rejects.toThrow(/ca\.pem.*delete it/)
  })

  it('its chain passes openssl verify', async () => {
    const nsm = await createDevNsm({ dir: dirA })
    const { document } = parseAttestationDocument(await nsm.getAttestationDocument())
    writeFileSync(join(temp.path, 'root.pem'), derToPem(document.cabundle[0]!))
    writeFileSync(join(temp.path, 'inter.pem'), derToPem(document.cabundle[1]!))
    writeFileSync(join(temp.path, 'leaf.pem'), derToPem(document.certificate))
    const out = execFileSync(
      'openssl',
      ['verify', '-CAfile', 'root.pem', '-untrusted', 'inter.pem', 'leaf.pem'],
      { cwd: temp.path },
    )
    expect(out.toString()).toMatch(/leaf\.pem: OK/)
  })
})

describe('verification details with constructed documents', () => {
  async function documentWith(
    fields: { cabundle: Uint8Array[]; certificate: Uint8Array; key: import('node:crypto').KeyObject },
    indefinite = false,
  ) {
    const payload = encodeAttestationPayload(
      {
        moduleId: 'i-0123456789abcdef0-enc0123456789abcdef',
        timestamp: Date.now(),
        pcrs: new Map(Array.from({ length: 16 }, (_, i) => [i, new Uint8Array(48).fill(i === 0 ? 0xab : 0)])),
        certificate: fields.certificate,
        cabundle: fields.cabundle,
        publicKey: null,
        userData: null,
        nonce: null,
      },
      indefinite,
    )
    return signCoseSign1(payload, fields.key)
  }

  it('accepts an indefinite-length payload map and verifies over the bytes as received', async () => {
    const ca = await openDevCa(dirA, Date.now())
    const leaf = await ca.leafAt(Date.now())
    const doc = await documentWith(
      { cabundle: [ca.root.der, ca.intermediate.der], certificate: leaf.der, key: leaf.key },
      true,
    )
    const cose = decodeCoseSign1(doc)
    expect(cose.payload[0]).toBe(0xbf)
    expect(cose.payload[cose.payload.length - 1]).toBe(0xff)
    const verifier = createAttestationVerifier({ roots: [derToPem(ca.root.der)] })
    expect(verifier.verify(doc).failures).toEqual([])
  })

  it('reports invalid-chain when the leaf comes from another CA', async () => {
    const a = await openDevCa(dirA, Date.now())
    const b = await openDevCa(dirB, Date.now())
    const foreignLeaf = await b.leafAt(Date.now())
    const doc = await documentWith({
      cabundle: [a.root.der, a.intermediate.der],
      certificate: foreignLeaf.der,
      key: foreignLeaf.key,
    })
    const result = createAttestationVerifier({ roots: [derToPem(a.root.der)] }).verify(doc)
    expect(reasons(result)).toEqual(['invalid-chain'])
    expect(result.failures[0]?.certificate).toBe(2)
  })

  it('enforces basicConstraints and pathLen', async () => {
    const now = Date.now()
    const dates = { notBefore: new Date(now - 3600_000), notAfter: new Date(now + 3600_000) }
    const [rootKey, i1Key, i2Key, leafKey] = await Promise.all([
      generateEcKey(),
      generateEcKey(),
      generateEcKey(),
      generateEcKey(),
    ])
    const issuer = (name: string, k: typeof rootKey) => ({
      name,
      key: k.cryptoKey.privateKey,
      publicKey: k.cryptoKey.publicKey,
    })
    const root = await issueCertificate({
      subject: 'CN=r',
      publicKey: rootKey.cryptoKey.publicKey,
      selfKey: rootKey.cryptoKey.privateKey,
      caPathLen: null,
      ...dates,
    })
    const i1 = await issueCertificate({
      subject: 'CN=i1',
      issuer: issuer('CN=r', rootKey),
      publicKey: i1Key.cryptoKey.publicKey,
      caPathLen: 0,
      ...dates,
    })
    const i2 = await issueCertificate({
      subject: 'CN=i2',
      issuer: issuer('CN=i1', i1Key),
      publicKey: i2Key.cryptoKey.publicKey,
      caPathLen: 0,
      ...dates,
    })
    const leaf = await issueCertificate({
      subject: 'CN=leaf',
      issuer: issuer('CN=i2', i2Key),
      publicKey: leafKey.cryptoKey.publicKey,
      ...dates,
    })
    const verifier = createAttestationVerifier({ roots: [root] })
    const tooLong = verifier.verify(
      await documentWith({ cabundle: [root, i1, i2], certificate: leaf, key: leafKey.privateKey }),
    )
    expect(tooLong.failures).toEqual([
      {
        reason: 'invalid-constraints',
        message: 'cabundle[1] allows a path length of 0 but 1 CA certificates follow it',
        certificate: 1,
      },
    ])
    // an end-entity certificate used as an intermediate
    const notCa = await issueCertificate({
      subject: 'CN=i1',
      issuer: issuer('CN=r', rootKey),
      publicKey: i1Key.cryptoKey.publicKey,
      ...dates,
    })
    const leaf2 = await issueCertificate({
      subject: 'CN=leaf',
      issuer: issuer('CN=i1', i1Key),
      publicKey: leafKey.cryptoKey.publicKey,
      ...dates,
    })
    const result = verifier.verify(
      await documentWith({ cabundle: [root, notCa], certificate: leaf2, key: leafKey.privateKey }),
    )
    expect(result.failures.map((f) => f.message)).toContain('cabundle[1] is not a CA certificate')
  })
})

describe('dev NSM from EIF measurements', () => {
  it("takes nitro-cli's Measurements object (PCR0/1/2/8), with pcrs overriding", async () => {
    const measurements = {
      HashAlgorithm: 'Sha384 { ... }',
      PCR0: '11'.repeat(48),
      PCR1: '22'.repeat(48),
      PCR2: '33'.repeat(48),
      PCR8: '88'.repeat(48),
    }
    const nsm = await createDevNsm({ dir: dirA, measurements, pcrs: { 1: 'ff'.repeat(48) } })
    const { document } = parseAttestationDocument(await nsm.getAttestationDocument())
    expect(toHex(document.pcrs.get(0)!)).toBe('11'.repeat(48))
    expect(toHex(document.pcrs.get(1)!)).toBe('ff'.repeat(48))
    expect(toHex(document.pcrs.get(8)!)).toBe('88'.repeat(48))
    await expect(createDevNsm({ dir: dirA, measurements: { PCR0: 'abc' } })).rejects.toThrow(
      /PCR0 must be 48 bytes/,
    )
  })
})
