/**
 * Attested TLS: the server's TLS key is bound into an attestation document and the document travels
 * inside the self-signed certificate, in a non-critical extension. A client accepts the peer only
 * when the document verifies under its policy and binds the very key of the certificate presented
 * in the handshake.
 *
 * The binding is domain-separated: user_data = SHA-384("enclave-framework/attested-tls/v1" ‖ SPKI
 * DER). A bare public_key (or untagged user_data) binding says only "some code in this enclave asked
 * for a document with this key", which any enclave service that forwards caller fields to the NSM
 * will do for anyone; the tag says "this enclave chose this key for its TLS server".
 */

import { createHash, createPublicKey, X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import * as tls from 'node:tls'
import { asn1, OID } from './asn1.js'
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

/** The domain-separation tag of the attested-TLS key binding (see taggedDigest). */
export const ATTESTED_TLS_BINDING_TAG = 'enclave-framework/attested-tls/v1'

/**
 * - 'tagged': user_data = SHA-384(ATTESTED_TLS_BINDING_TAG ‖ SPKI DER). The default, and the only
 *   binding a verifier accepts unless told otherwise.
 * - 'public_key': SPKI DER in public_key. Weaker: also matches a document that an enclave service
 *   obtained for a caller-chosen key (e.g. an /attestation endpoint forwarding public_key).
 * - 'user_data': SHA-384(SPKI DER), or the SPKI itself (Evervault) in user_data. Weaker in the same
 *   way; for interoperability only.
 */
export type KeyBinding = 'tagged' | 'public_key' | 'user_data'

const BINDINGS: readonly KeyBinding[] = ['tagged', 'public_key', 'user_data']

/** SHA-384(ASCII tag ‖ data): how an enclave binds data to one purpose in user_data. */
export function taggedDigest(tag: string, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(Buffer.from(tag, 'ascii')).update(data).digest())
}

export interface AttestedTlsCredentialsOptions {
  /** Where documents come from: the device or the dev NSM. */
  nsm: Nsm
  /**
   * tagged: SHA-384(ATTESTED_TLS_BINDING_TAG ‖ SPKI DER) in user_data; public_key: SPKI DER in
   * public_key; user_data: SHA-384(SPKI DER) in user_data. The last two only for peers that
   * explicitly accept the weaker bindings. @default 'tagged'
   */
  binding?: KeyBinding
  /** @default 'P-256' */
  curve?: Curve
  /** Certificate subjectAltNames. @default ['localhost'] */
  dnsNames?: readonly string[]
  ipAddresses?: readonly string[]
  /** Nonce to put in the document. */
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
  const binding = options.binding ?? 'tagged'
  if (!BINDINGS.includes(binding)) {
    throw new InvalidOptionError(`binding must be one of ${BINDINGS.join(', ')}; got ${String(binding)}`)
  }
  const lifetime = options.lifetimeMs ?? 3 * 3600_000
  if (!Number.isFinite(lifetime) || lifetime <= 0)
    throw new InvalidOptionError('lifetimeMs must be a positive number')
  const key = await generateEcKey(options.curve ?? 'P-256')
  const spki = new Uint8Array(createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' }))
  const nonce = options.nonce ?? null
  const document = await options.nsm.getAttestationDocument(
    binding === 'tagged'
      ? { userData: taggedDigest(ATTESTED_TLS_BINDING_TAG, spki), nonce }
      : binding === 'public_key'
        ? { publicKey: spki, nonce }
        : { userData: spkiDigest(spki), nonce },
  )
  const now = Date.now()
  const { AsnConvert, OctetString } = asn1().schema
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

/** The (untagged, weaker) user_data binding: SHA-384 of the SubjectPublicKeyInfo DER. */
export function spkiDigest(spki: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha384').update(spki).digest())
}

/**
 * The attestation document a certificate carries, or undefined: this package's extension, or (for
 * interoperability with Evervault enclaves) a subjectAltName dNSName "<document hex>.<host>".
 */
export function attestationFromCertificate(certDer: Uint8Array): Uint8Array | undefined {
  const { AsnConvert, OctetString } = asn1().schema
  const { Certificate, SubjectAlternativeName } = asn1().x509
  try {
    const cert = AsnConvert.parse(certDer, Certificate)
    const extensions = cert.tbsCertificate.extensions ?? []
    const ext = extensions.find((e) => e.extnID === ATTESTATION_EXTENSION_OID)
    if (ext) return new Uint8Array(AsnConvert.parse(ext.extnValue, OctetString).buffer)
    const san = extensions.find((e) => e.extnID === OID.subjectAltName)
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
  /**
   * Which bindings to accept. 'public_key' and 'user_data' are weaker (see KeyBinding): opt in only
   * for peers you know never let a caller choose those document fields. @default ['tagged']
   */
  binding?: KeyBinding | readonly KeyBinding[]
}

/**
 * Checks a peer certificate (DER): it must carry an attestation document that verifies and binds
 * the certificate's own public key. Returns the verification result, with the binding failures
 * ('no-attestation', 'key-not-bound') added. Throws InvalidOptionError only for a bad `binding`.
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
  const accepted = acceptedBindings(options.binding)
  const result = options.verifier.verify(document, options.policy)
  const doc = result.document
  const matches: Record<KeyBinding, () => boolean> = {
    tagged: () => !!doc?.userData && bytesEqual(doc.userData, taggedDigest(ATTESTED_TLS_BINDING_TAG, spki)),
    public_key: () => !!doc?.publicKey && bytesEqual(doc.publicKey, spki),
    // SHA-384(SPKI) as older versions of this package wrote it, or the SPKI itself as Evervault does
    user_data: () =>
      !!doc?.userData && (bytesEqual(doc.userData, spkiDigest(spki)) || bytesEqual(doc.userData, spki)),
  }
  const bound = accepted.some((b) => matches[b]())
  if (bound || !doc) return result
  return {
    ok: false,
    document: doc,
    cose: result.cose,
    failures: [
      ...result.failures,
      {
        reason: 'key-not-bound',
        message:
          "the attestation document does not bind the TLS certificate's public key " +
          `with an accepted binding (${accepted.join(', ')})`,
      },
    ],
    verifiedAt: result.verifiedAt,
  }
}

function acceptedBindings(binding: AttestedPeerOptions['binding']): readonly KeyBinding[] {
  const list = binding === undefined ? ['tagged' as const] : typeof binding === 'string' ? [binding] : binding
  if (list.length === 0 || list.some((b) => !BINDINGS.includes(b))) {
    throw new InvalidOptionError(`binding must list some of ${BINDINGS.join(', ')}; got ${String(binding)}`)
  }
  return list
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
    acceptedBindings(options.binding) // a bad option rejects here, before any connection
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
  acceptedBindings(options.binding)
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
  acceptedBindings(options.binding)
  return (host, cert) => {
    const result = verifyAttestedCertificate(new Uint8Array(cert.raw), options)
    if (!result.ok) return new AttestedPeerError(result.failures)
    return tls.checkServerIdentity(host, cert)
  }
}
