/**
 * Attested TLS: the server's TLS key is bound into an attestation document (its SPKI DER as
 * public_key, or SHA-384 of it as user_data) and the document travels inside the self-signed
 * certificate, in a non-critical extension. A client accepts the peer only when the document
 * verifies under its policy and binds the very key of the certificate presented in the handshake.
 */

import { createHash, createPublicKey, X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import * as tls from 'node:tls'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import { Certificate, id_ce_subjectAltName, SubjectAlternativeName } from '@peculiar/asn1-x509'
import { bytesEqual, derToPem } from './bytes.js'
import { AttestedPeerError, InvalidOptionError } from './errors.js'
import type { Nsm } from './nsm.js'
import type { AttestationPolicy } from './options.js'
import type { VerificationFailure, VerificationResult } from './result.js'
import type { AttestationVerifier } from './verify.js'
import { type Curve, generateEcKey, issueCertificate } from './x509-issue.js'

/**
 * The certificate extension carrying the attestation document. It sits in the IANA "experimental"
 * arc (1.3.6.1.3, RFC 1155), which needs no registration; a UUID OID (2.25.…) would be nicer but
 * asn1js cannot round-trip 128-bit arcs.
 */
export const ATTESTATION_EXTENSION_OID = '1.3.6.1.3.5.1792.1'

export type KeyBinding = 'public_key' | 'user_data'

export interface AttestedTlsCredentialsOptions {
  /** Where documents come from: the device or the dev NSM. */
  nsm: Nsm
  /** public_key: SPKI DER in public_key; user_data: SHA-384(SPKI DER) in user_data. @default 'public_key' */
  binding?: KeyBinding
  /** @default 'P-256' */
  curve?: Curve
  /** Certificate subjectAltNames. @default ['localhost'] */
  dnsNames?: readonly string[]
  ipAddresses?: readonly string[]
  /** Nonce to put in the document (only with the user_data binding, public_key otherwise). */
  nonce?: Uint8Array
  /** Certificate lifetime in ms; the document's own chain lives about 3 hours on Nitro. @default 3 hours */
  lifetimeMs?: number
}

export interface AttestedTlsCredentials {
  /** PEM private key and certificate for tls.createServer / https.createServer / setSecureContext. */
  readonly key: string
  readonly cert: string
  readonly document: Uint8Array
  readonly spki: Uint8Array
}

/** A fresh key, its attestation document, and a self-signed certificate carrying both. */
export async function createAttestedTlsCredentials(
  options: AttestedTlsCredentialsOptions,
): Promise<AttestedTlsCredentials> {
  const binding = options.binding ?? 'public_key'
  if (binding !== 'public_key' && binding !== 'user_data') {
    throw new InvalidOptionError(`binding must be 'public_key' or 'user_data', got ${String(binding)}`)
  }
  const lifetime = options.lifetimeMs ?? 3 * 3600_000
  if (!Number.isFinite(lifetime) || lifetime <= 0)
    throw new InvalidOptionError('lifetimeMs must be a positive number')
  const key = await generateEcKey(options.curve ?? 'P-256')
  const spki = new Uint8Array(createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' }))
  const document = await options.nsm.getAttestationDocument(
    binding === 'public_key'
      ? { publicKey: spki, nonce: options.nonce ?? null }
      : { userData: spkiDigest(spki), nonce: options.nonce ?? null },
  )
  const now = Date.now()
  const der = await issueCertificate({
    subject: 'CN=enclave attested TLS',
    publicKey: key.cryptoKey.publicKey,
    selfKey: key.cryptoKey.privateKey,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + lifetime),
    dnsNames: options.dnsNames ?? ['localhost'],
    ipAddresses: options.ipAddresses ?? [],
    extraExtensions: [
      [ATTESTATION_EXTENSION_OID, new Uint8Array(AsnConvert.serialize(new OctetString(document)))],
    ],
  })
  return { key: key.privateKeyPem, cert: derToPem(der), document, spki }
}

/** The user_data binding: SHA-384 of the SubjectPublicKeyInfo DER. */
export function spkiDigest(spki: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(spki).digest())
}

/**
 * The attestation document a certificate carries, or undefined: this package's extension, or (for
 * interoperability with Evervault enclaves) a subjectAltName dNSName "<document hex>.<host>".
 */
export function attestationFromCertificate(certDer: Uint8Array): Uint8Array | undefined {
  try {
    const cert = AsnConvert.parse(certDer, Certificate)
    const extensions = cert.tbsCertificate.extensions ?? []
    const ext = extensions.find((e) => e.extnID === ATTESTATION_EXTENSION_OID)
    if (ext) return new Uint8Array(AsnConvert.parse(ext.extnValue, OctetString).buffer)
    const san = extensions.find((e) => e.extnID === id_ce_subjectAltName)
    if (!san) return undefined
    for (const name of AsnConvert.parse(san.extnValue, SubjectAlternativeName)) {
      // "<document hex>.<host>": a COSE_Sign1 in hex starts 8444a1013822 (untagged, ES384)
      const label = name.dNSName?.split('.')[0]
      if (label && /^8444a1013822[0-9a-f]+$/i.test(label) && label.length % 2 === 0) {
        return new Uint8Array(Buffer.from(label, 'hex'))
      }
    }
    return undefined
  } catch {
    return undefined
  }
}

export interface AttestedPeerOptions {
  verifier: AttestationVerifier
  /** Per-connection policy (PCRs, maxAgeMs...). */
  policy?: AttestationPolicy
  /** Which binding to accept. @default either */
  binding?: KeyBinding
}

/**
 * Checks a peer certificate (DER): it must carry an attestation document that verifies and binds
 * the certificate's own public key. Returns the verification result, with the binding failures
 * ('no-attestation', 'key-not-bound') added.
 */
export function verifyAttestedCertificate(
  certDer: Uint8Array,
  options: AttestedPeerOptions,
): VerificationResult {
  const at = Date.now()
  const fail = (failure: VerificationFailure): VerificationResult => ({
    ok: false,
    document: undefined,
    cose: undefined,
    failures: [failure],
    verifiedAt: at,
  })
  let spki: Uint8Array
  try {
    spki = new Uint8Array(new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' }))
  } catch (err) {
    return fail({
      reason: 'malformed',
      message: `peer certificate does not parse: ${(err as Error).message}`,
    })
  }
  const document = attestationFromCertificate(certDer)
  if (!document)
    return fail({ reason: 'no-attestation', message: 'the peer certificate carries no attestation document' })
  const result = options.verifier.verify(document, options.policy)
  const doc = result.document
  const byKey = doc?.publicKey ? bytesEqual(doc.publicKey, spki) : false
  // user_data: SHA-384(SPKI) as this package writes it, or the SPKI itself as Evervault does
  const byData = doc?.userData
    ? bytesEqual(doc.userData, spkiDigest(spki)) || bytesEqual(doc.userData, spki)
    : false
  const bound =
    options.binding === 'public_key' ? byKey : options.binding === 'user_data' ? byData : byKey || byData
  if (bound || !doc) return result
  return {
    ok: false,
    document: doc,
    cose: result.cose,
    failures: [
      ...result.failures,
      {
        reason: 'key-not-bound',
        message: "the attestation document does not bind the TLS certificate's public key",
      },
    ],
    verifiedAt: result.verifiedAt,
  }
}

function verifySocket(socket: tls.TLSSocket, options: AttestedPeerOptions): VerificationResult {
  const peer = socket.getPeerCertificate(true)
  if (!peer?.raw) {
    return {
      ok: false,
      document: undefined,
      cose: undefined,
      failures: [{ reason: 'no-attestation', message: 'the peer presented no certificate' }],
      verifiedAt: Date.now(),
    }
  }
  return verifyAttestedCertificate(new Uint8Array(peer.raw), options)
}

/**
 * node:tls connect that resolves only for an attested peer. The usual CA check is replaced by the
 * attestation (the certificate is self-signed); the socket is destroyed before any data flows when
 * the peer fails. Rejects with AttestedPeerError listing every failure.
 */
export function connectAttested(
  connectOptions: tls.ConnectionOptions,
  options: AttestedPeerOptions,
): Promise<tls.TLSSocket & { attestation: VerificationResult }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...connectOptions, rejectUnauthorized: false, session: undefined })
    const onError = (err: Error) => reject(err)
    socket.once('error', onError)
    socket.once('secureConnect', () => {
      socket.off('error', onError)
      const result = verifySocket(socket, options)
      if (!result.ok) {
        const err = new AttestedPeerError(result.failures)
        socket.destroy()
        reject(err)
        return
      }
      resolve(Object.assign(socket, { attestation: result }))
    })
  })
}

/** undici's `connect` option shape (Agent / Client / Pool), without depending on undici. */
export type AttestedConnector = (
  opts: {
    hostname: string
    host?: string
    port: string | number
    servername?: string | null
    protocol?: string
  },
  callback: (...args: [null, tls.TLSSocket] | [Error, null]) => void,
) => void

/**
 * A connector for undici: `new Agent({ connect: createAttestedConnector({ verifier, policy }) })`
 * makes every https request to the pool go to an attested peer only.
 */
export function createAttestedConnector(
  options: AttestedPeerOptions & { timeoutMs?: number },
): AttestedConnector {
  const timeoutMs = options.timeoutMs ?? 10_000
  return (opts, callback) => {
    // SNI takes host names only, never IP literals
    const servername = opts.servername || (isIP(opts.hostname) ? undefined : opts.hostname)
    const socket = tls.connect({
      host: opts.hostname,
      port: Number(opts.port) || 443,
      servername,
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: false,
    })
    let done = false
    const finish = (err: Error | null) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.off('error', finish)
      if (err) {
        socket.destroy()
        callback(err, null)
      } else {
        callback(null, socket)
      }
    }
    const timer = setTimeout(
      () => finish(new AttestedPeerError([], `attested TLS connect timed out after ${timeoutMs} ms`)),
      timeoutMs,
    )
    socket.once('error', finish)
    socket.once('secureConnect', () => {
      const result = verifySocket(socket, options)
      finish(result.ok ? null : new AttestedPeerError(result.failures))
    })
  }
}

/**
 * For node:tls `checkServerIdentity` when the certificate chains to a CA the client already trusts
 * (`ca: [...]`): Node calls it only after its own chain check passed. Returns an Error to refuse.
 */
export function createAttestedCheckServerIdentity(
  options: AttestedPeerOptions,
): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  return (host, cert) => {
    const result = verifyAttestedCertificate(new Uint8Array(cert.raw), options)
    if (!result.ok) return new AttestedPeerError(result.failures)
    return tls.checkServerIdentity(host, cert)
  }
}
