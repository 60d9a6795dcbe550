/**
 * Certificate issuing for the dev CA and attested TLS, through @peculiar/x509 (loaded on first use:
 * it needs the reflect-metadata polyfill, which verification-only users should not pay for).
 */

import { createPrivateKey, type KeyObject, randomBytes, webcrypto } from 'node:crypto'

type X509Module = typeof import('@peculiar/x509')
let x509Module: Promise<X509Module> | undefined

async function loadX509(): Promise<X509Module> {
  x509Module ??= (async () => {
    await import('reflect-metadata')
    const mod = await import('@peculiar/x509')
    mod.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto)
    return mod
  })()
  return x509Module
}

export interface IssuedKey {
  /** WebCrypto key pair (for issuing certificates). */
  readonly cryptoKey: webcrypto.CryptoKeyPair
  /** PKCS#8 PEM of the private key (for persistence and node:crypto). */
  readonly privateKeyPem: string
  readonly privateKey: KeyObject
}

export type Curve = 'P-256' | 'P-384'

export async function generateEcKey(curve: Curve = 'P-384'): Promise<IssuedKey> {
  const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey))
  const privateKeyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')}\n-----END PRIVATE KEY-----\n`
  return { cryptoKey: pair, privateKeyPem, privateKey: createPrivateKey(privateKeyPem) }
}

/** Re-imports a persisted PKCS#8 PEM key as a WebCrypto signing key. */
export async function importSigningKey(pem: string, curve: Curve = 'P-384'): Promise<webcrypto.CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s+/g, ''), 'base64')
  return webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: curve }, false, [
    'sign',
  ]) as Promise<webcrypto.CryptoKey>
}

export interface IssueParams {
  readonly subject: string
  /** Issuer name and signing key; omitted for a self-signed certificate. */
  readonly issuer?: {
    readonly name: string
    readonly key: webcrypto.CryptoKey
    readonly publicKey: webcrypto.CryptoKey
  }
  readonly publicKey: webcrypto.CryptoKey
  /** Signing key when self-signed. */
  readonly selfKey?: webcrypto.CryptoKey
  readonly notBefore: Date
  readonly notAfter: Date
  /** undefined: end entity. A number: CA with that pathLen; null: CA without pathLen. */
  readonly caPathLen?: number | null
  readonly dnsNames?: readonly string[]
  readonly ipAddresses?: readonly string[]
  /** Extra non-critical extensions: [oid, DER value]. */
  readonly extraExtensions?: readonly (readonly [string, Uint8Array])[]
}

/** Issues an ECDSA-with-SHA384 certificate; returns its DER. */
export async function issueCertificate(params: IssueParams): Promise<Uint8Array> {
  const x = await loadX509()
  const isCA = params.caPathLen !== undefined
  const extensions: InstanceType<X509Module['Extension']>[] = [
    new x.BasicConstraintsExtension(
      isCA,
      isCA && params.caPathLen !== null ? params.caPathLen : undefined,
      true,
    ),
    new x.KeyUsagesExtension(
      isCA
        ? x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign | x.KeyUsageFlags.digitalSignature
        : x.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x.SubjectKeyIdentifierExtension.create(params.publicKey),
  ]
  if (params.issuer) extensions.push(await x.AuthorityKeyIdentifierExtension.create(params.issuer.publicKey))
  const names = [
    ...(params.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(params.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ]
  if (names.length > 0) extensions.push(new x.SubjectAlternativeNameExtension(names, false))
  for (const [oid, value] of params.extraExtensions ?? []) extensions.push(new x.Extension(oid, false, value))
  const signingKey = params.issuer?.key ?? params.selfKey
  if (!signingKey) throw new Error('issueCertificate: a self-signed certificate needs selfKey')
  const cert = await x.X509CertificateGenerator.create({
    // positive, 16 bytes
    serialNumber: `01${randomBytes(15).toString('hex')}`,
    subject: params.subject,
    issuer: params.issuer?.name ?? params.subject,
    notBefore: params.notBefore,
    notAfter: params.notAfter,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    publicKey: params.publicKey,
    signingKey,
    extensions,
  })
  return new Uint8Array(cert.rawData)
}
