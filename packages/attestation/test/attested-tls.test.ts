import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { makeTempDir } from '@enclave/test-helpers'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { derToPem, pemToDer } from '../src/bytes.js'
import {
  ATTESTATION_EXTENSION_OID,
  ATTESTED_TLS_BINDING_TAG,
  AttestedPeerError,
  type AttestedTlsCredentials,
  attestationFromCertificate,
  connectAttested,
  createAttestationVerifier,
  createAttestedCheckServerIdentity,
  createAttestedConnector,
  createAttestedTlsCredentials,
  createDevNsm,
  type DevNsm,
  parseAttestationDocument,
  spkiDigest,
  taggedDigest,
  toHex,
  verifyAttestedCertificate,
} from '../src/index.js'
import { generateEcKey, issueCertificate } from '../src/x509-issue.js'

const PCR0 = 'ab'.repeat(48)
const temp = makeTempDir('attested-tls-')
let nsm: DevNsm
let creds: AttestedTlsCredentials
const servers: { close(): unknown }[] = []

beforeAll(async () => {
  nsm = await createDevNsm({ dir: join(temp.path, 'ca'), pcrs: { 0: PCR0 } })
  creds = await createAttestedTlsCredentials({ nsm, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] })
})
afterAll(async () => {
  for (const s of servers) s.close()
  temp.remove()
})

async function tlsServer(key: string, cert: string): Promise<{ port: number; received: Buffer[] }> {
  const received: Buffer[] = []
  const server = tls.createServer({ key, cert }, (socket) => {
    socket.on('data', (d: Buffer) => received.push(d))
    socket.on('error', () => {})
    socket.end('hello from the enclave')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  servers.push(server)
  return { port: (server.address() as AddressInfo).port, received }
}

const verifier = () => createAttestationVerifier({ roots: [nsm.rootCertificatePem] })

describe('attested TLS credentials', () => {
  it('carry a document that binds the certificate key (tagged SHA-384 in user_data by default; weaker bindings on request)', async () => {
    const doc = attestationFromCertificate(pemToDer(creds.cert)!)
    expect(doc && toHex(doc)).toBe(toHex(creds.document))
    const tagged = parseAttestationDocument(creds.document).document
    expect(tagged.publicKey).toBeNull()
    expect(toHex(tagged.userData!)).toBe(
      toHex(createHash('sha384').update(ATTESTED_TLS_BINDING_TAG).update(creds.spki).digest()),
    )
    expect(toHex(taggedDigest(ATTESTED_TLS_BINDING_TAG, creds.spki))).toBe(toHex(tagged.userData!))
    const byKey = await createAttestedTlsCredentials({ nsm, binding: 'public_key' })
    expect(toHex(parseAttestationDocument(byKey.document).document.publicKey!)).toBe(toHex(byKey.spki))
    const byData = await createAttestedTlsCredentials({ nsm, binding: 'user_data', curve: 'P-384' })
    const parsed = parseAttestationDocument(byData.document).document
    expect(parsed.publicKey).toBeNull()
    expect(toHex(parsed.userData!)).toBe(toHex(spkiDigest(byData.spki)))
  })
})

describe('connectAttested (node:tls)', () => {
  it('connects to an attested peer matching the policy', async () => {
    const { port } = await tlsServer(creds.key, creds.cert)
    const socket = await connectAttested(
      { host: '127.0.0.1', port },
      { verifier: verifier(), policy: { pcrs: { 0: PCR0 } } },
    )
    expect(socket.attestation.ok).toBe(true)
    expect(socket.attestation.document?.moduleId).toBe(nsm.moduleId)
    const chunks: Buffer[] = []
    for await (const chunk of socket) chunks.push(chunk as Buffer)
    expect(Buffer.concat(chunks).toString()).toBe('hello from the enclave')
  })

  it('refuses a peer whose PCRs differ, before sending any data', async () => {
    const { port, received } = await tlsServer(creds.key, creds.cert)
    const err = await connectAttested(
      { host: '127.0.0.1', port },
      { verifier: verifier(), policy: { pcrs: { 0: 'cd'.repeat(48) } } },
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AttestedPeerError)
    expect((err as AttestedPeerError).failures.map((f) => f.reason)).toEqual(['pcr-mismatch'])
    expect(received).toEqual([])
  })

  it('refuses a plain self-signed peer (no-attestation) and a document for another key (key-not-bound)', async () => {
    const key = await generateEcKey('P-256')
    const now = Date.now()
    const dates = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) }
    const plain = await issueCertificate({
      subject: 'CN=plain',
      publicKey: key.cryptoKey.publicKey,
      selfKey: key.cryptoKey.privateKey,
      ...dates,
    })
    const a = await tlsServer(key.privateKeyPem, derToPem(plain))
    const e1 = await connectAttested({ host: '127.0.0.1', port: a.port }, { verifier: verifier() }).catch(
      (e: unknown) => e,
    )
    expect((e1 as AttestedPeerError).failures.map((f) => f.reason)).toEqual(['no-attestation'])

    // a genuine document, replayed in a certificate for a different key
    const replayed = await issueCertificate({
      subject: 'CN=replay',
      publicKey: key.cryptoKey.publicKey,
      selfKey: key.cryptoKey.privateKey,
      extraExtensions: [[ATTESTATION_EXTENSION_OID, derOctet(creds.document)]],
      ...dates,
    })
    const b = await tlsServer(key.privateKeyPem, derToPem(replayed))
    const e2 = await connectAttested({ host: '127.0.0.1', port: b.port }, { verifier: verifier() }).catch(
      (e: unknown) => e,
    )
    expect((e2 as AttestedPeerError).code).toBe('ENCLAVE_ATTESTATION_UNATTESTED_PEER')
    expect((e2 as AttestedPeerError).failures.map((f) => f.reason)).toEqual(['key-not-bound'])
  })

  it('refuses the weaker bindings (bare public_key, untagged user_data) unless the client opts in', async () => {
    // what a service forwarding caller fields to the NSM hands anyone: a genuine document for their key
    for (const binding of ['public_key', 'user_data'] as const) {
      const weak = await createAttestedTlsCredentials({ nsm, binding, ipAddresses: ['127.0.0.1'] })
      const { port } = await tlsServer(weak.key, weak.cert)
      const err = await connectAttested({ host: '127.0.0.1', port }, { verifier: verifier() }).catch(
        (e: unknown) => e,
      )
      expect((err as AttestedPeerError).failures.map((f) => f.reason)).toEqual(['key-not-bound'])
      const optedIn = await connectAttested(
        { host: '127.0.0.1', port },
        { verifier: verifier(), binding: ['tagged', binding] },
      )
      expect(optedIn.attestation.ok).toBe(true)
      optedIn.destroy()
      const der = pemToDer(weak.cert)!
      expect(verifyAttestedCertificate(der, { verifier: verifier() }).failures.map((f) => f.reason)).toEqual([
        'key-not-bound',
      ])
      expect(verifyAttestedCertificate(der, { verifier: verifier(), binding }).ok).toBe(true)
    }
    // and the tagged credentials are refused by a client that accepts only a weaker binding
    expect(
      verifyAttestedCertificate(pemToDer(creds.cert)!, { verifier: verifier(), binding: 'public_key' }).ok,
    ).toBe(false)
    // a bad binding option is a typed error, not a silent "accept anything"
    expect(() => createAttestedConnector({ verifier: verifier(), binding: [] })).toThrow(/binding must list/)
    await expect(
      connectAttested({ host: '127.0.0.1', port: 1 }, { verifier: verifier(), binding: 'x' as 'tagged' }),
    ).rejects.toMatchObject({ code: 'ENCLAVE_ATTESTATION_INVALID_OPTION' })
  })

  it('refuses a dev document when the verifier pins the AWS root (untrusted-root)', async () => {
    const { port } = await tlsServer(creds.key, creds.cert)
    const err = await connectAttested(
      { host: '127.0.0.1', port },
      { verifier: createAttestationVerifier() },
    ).catch((e: unknown) => e)
    expect((err as AttestedPeerError).failures.map((f) => f.reason)).toEqual(['untrusted-root'])
  })

  it('works as checkServerIdentity when the client pins the certificate as its CA', async () => {
    const { port } = await tlsServer(creds.key, creds.cert)
    const good = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: creds.cert,
      checkServerIdentity: createAttestedCheckServerIdentity({
        verifier: verifier(),
        policy: { pcrs: { 0: PCR0 } },
      }),
    })
    await once(good, 'secureConnect')
    expect(good.authorized).toBe(true)
    good.destroy()
    const bad = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: creds.cert,
      checkServerIdentity: createAttestedCheckServerIdentity({
        verifier: verifier(),
        policy: { pcrs: { 1: PCR0 } },
      }),
    })
    const [err] = await once(bad, 'error')
    expect(err).toBeInstanceOf(AttestedPeerError)
  })
})

describe('createAttestedConnector (undici)', () => {
  it('lets requests through to an attested HTTPS server and refuses one that fails the policy', async () => {
    const server = createHttpsServer({ key: creds.key, cert: creds.cert }, (_req, res) => res.end('attested'))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    servers.push(server)
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`
    const good = new Agent({
      connect: createAttestedConnector({ verifier: verifier(), policy: { pcrs: { 0: PCR0 } } }),
    })
    const res = await request(url, { dispatcher: good })
    expect(res.statusCode).toBe(200)
    expect(await res.body.text()).toBe('attested')
    await good.close()
    const bad = new Agent({
      connect: createAttestedConnector({ verifier: verifier(), policy: { pcrs: { 0: '00'.repeat(48) } } }),
    })
    const err = await request(url, { dispatcher: bad }).catch((e: unknown) => e)
    expect((err as AttestedPeerError).code).toBe('ENCLAVE_ATTESTATION_UNATTESTED_PEER')
    await bad.close()
  })
})

function derOctet(bytes: Uint8Array): Uint8Array {
  // DER OCTET STRING with a 2-byte long-form length (documents are 256..65535 bytes)
  return new Uint8Array([0x04, 0x82, bytes.length >> 8, bytes.length & 0xff, ...bytes])
}

describe('interoperability with real attested-TLS certificates (Evervault, SAN-carried documents)', () => {
  it('finds the document in the certificate and checks the user_data binding at a time inside its window', async () => {
    const { readFileSync } = await import('node:fs')
    const { FIXTURES } = await import('./vectors.js')
    const pem = readFileSync(
      `${FIXTURES}evervault/non-debug-cert-containing-attestation-document-18-1-23.pem`,
      'utf8',
    )
    const der = pemToDer(pem)!
    const cose = new Uint8Array(
      readFileSync(`${FIXTURES}evervault/non-debug-cert-containing-attestation-document-18-1-23.pem.cose`),
    )
    expect(toHex(attestationFromCertificate(der)!)).toBe(toHex(cose))
    const at = parseAttestationDocument(cose).document.timestamp + 1000
    const result = verifyAttestedCertificate(der, {
      verifier: createAttestationVerifier(),
      policy: { at },
      binding: 'user_data',
    })
    expect(result.failures).toEqual([])
    expect(result.ok).toBe(true)
    // untagged: refused by default
    const byDefault = verifyAttestedCertificate(der, {
      verifier: createAttestationVerifier(),
      policy: { at },
    })
    expect(byDefault.failures.map((f) => f.reason)).toEqual(['key-not-bound'])
    // its public_key is null: requiring the public_key binding refuses it
    const strict = verifyAttestedCertificate(der, {
      verifier: createAttestationVerifier(),
      policy: { at },
      binding: 'public_key',
    })
    expect(strict.failures.map((f) => f.reason)).toEqual(['key-not-bound'])
  })
})

describe('fuzz: certificates handed to the attested-TLS check', () => {
  it('2000 mutated certificates give a failed result, never an exception', () => {
    const der = pemToDer(creds.cert)!
    const verifier = createAttestationVerifier({ roots: [nsm.rootCertificatePem] })
    let seed = 7
    const rand = () => {
      seed = (seed * 1103515245 + 12345) >>> 0
      return seed / 4294967296
    }
    let accepted = 0
    for (let i = 0; i < 2000; i++) {
      const copy = new Uint8Array(der)
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++)
        copy[Math.floor(rand() * copy.length)]! ^= 1 << Math.floor(rand() * 8)
      const input = i % 10 === 0 ? copy.subarray(0, Math.floor(rand() * copy.length)) : copy
      const result = verifyAttestedCertificate(input, { verifier })
      if (result.ok) {
        // only a flip that leaves the key and the document intact can pass (e.g. in the
        // self-signature, which the attested check does not rely on)
        accepted++
        expect(toHex(attestationFromCertificate(input)!)).toBe(toHex(creds.document))
        expect(toHex(result.document!.userData!)).toBe(
          toHex(taggedDigest(ATTESTED_TLS_BINDING_TAG, creds.spki)),
        )
      } else {
        expect(result.failures.length).toBeGreaterThan(0)
      }
    }
    expect(accepted).toBeLessThan(2000)
  })
})
