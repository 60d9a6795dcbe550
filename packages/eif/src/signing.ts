import {
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  type KeyObject,
  X509Certificate,
} from 'node:crypto'
import {
  algorithmFromCurve,
  COSE_ALGORITHMS,
  type CoseAlgorithm,
  CoseBadSignerOutputError,
  CoseError,
  type CoseSign1,
  CoseSignerFailedError,
  checkCoseSign1Signature,
  decodeCbor,
  decodeCoseSign1,
  encodeCbor,
  isCoseAlgorithm,
  signCoseSign1With,
} from '@enclave/cose'
import { AsnConvert } from '@peculiar/asn1-schema'
import { Certificate } from '@peculiar/asn1-x509'
import {
  EifBadCertificateError,
  EifBadKeyError,
  EifBadSignatureSectionError,
  type EifErrorLocation,
  EifInvalidOptionsError,
  EifSignerFailedError,
} from './errors.js'
import { PCR_SIZE } from './pcr.js'

/**
 * Signs the image's PCR0. `sign` gets the whole COSE Sig_structure and must hash it with the
 * algorithm's hash (SHA-256/384/512) and return the raw r‖s signature (IEEE P1363, not DER).
 * Implement it over a KMS or HSM key; createPemSigner() covers local PEM keys.
 */
export interface EifSigner {
  algorithm: CoseAlgorithm
  /** The signing certificate, DER. Its public key must be the signing key's. */
  certificateDer: Uint8Array
  sign(toBeSigned: Buffer): Promise<Uint8Array>
}

export interface PemSignerOptions {
  /** EC private key on P-256, P-384 or P-521: PEM (PKCS#8 or SEC1) or a KeyObject. */
  privateKey: string | Buffer | KeyObject
  /** The signing certificate, PEM or DER. */
  certificate: string | Uint8Array
}

/** A signer over a local EC private key; the algorithm follows the key's curve. */
export function createPemSigner(options: PemSignerOptions): EifSigner {
  let key: KeyObject
  try {
    key =
      typeof options.privateKey === 'string' || Buffer.isBuffer(options.privateKey)
        ? createPrivateKey(options.privateKey)
        : options.privateKey
  } catch (cause) {
    throw new EifBadKeyError('the signing key cannot be parsed: give a PEM EC private key (PKCS#8 or SEC1)', {
      cause,
    })
  }
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ec') {
    throw new EifBadKeyError(
      `the signing key must be an EC private key, got a ${key.type} ${key.asymmetricKeyType ?? ''} key`,
    )
  }
  const algorithm = algorithmFromCurve(key.asymmetricKeyDetails?.namedCurve)
  if (algorithm === undefined) {
    throw new EifBadKeyError(
      `the signing key's curve ${key.asymmetricKeyDetails?.namedCurve} is not P-256, P-384 or P-521`,
    )
  }
  const certificate = parseCertificate(options.certificate)
  const keySpki = createPublicKey(key).export({ type: 'spki', format: 'der' })
  const certSpki = certificate.publicKey.export({ type: 'spki', format: 'der' })
  if (!keySpki.equals(certSpki)) {
    throw new EifBadCertificateError("the signing certificate's public key is not the signing key's")
  }
  const hash = COSE_ALGORITHMS[algorithm].hash
  return {
    algorithm,
    certificateDer: certificate.raw,
    sign: async (toBeSigned) => cryptoSign(hash, toBeSigned, { key, dsaEncoding: 'ieee-p1363' }),
  }
}

/** Parses an X.509 certificate given as PEM text/bytes or DER. */
export function parseCertificate(input: string | Uint8Array, where: EifErrorLocation = {}): X509Certificate {
  try {
    const certificate = new X509Certificate(typeof input === 'string' ? input : Buffer.from(input))
    // OpenSSL decodes the subject public key only when asked: a damaged key would otherwise
    // surface later as an untyped ERR_OSSL_EVP_DECODE_ERROR from the signature check.
    void certificate.publicKey
    return certificate
  } catch (cause) {
    throw new EifBadCertificateError(
      'the signing certificate is not a valid X.509 certificate with a readable public key (PEM or DER)',
      {
        ...where,
        cause,
      },
    )
  }
}

/** Checks a caller's signer before any byte is written. */
export function checkSigner(signer: EifSigner): X509Certificate {
  if (typeof signer !== 'object' || signer === null || typeof signer.sign !== 'function') {
    throw new EifInvalidOptionsError('signer must be { algorithm, certificateDer, sign(toBeSigned) }')
  }
  if (!isCoseAlgorithm(signer.algorithm)) {
    throw new EifInvalidOptionsError(
      `signer.algorithm must be ES256, ES384 or ES512, got ${String(signer.algorithm)}`,
    )
  }
  if (!(signer.certificateDer instanceof Uint8Array)) {
    throw new EifInvalidOptionsError('signer.certificateDer must be the DER bytes of the signing certificate')
  }
  const certificate = parseCertificate(signer.certificateDer)
  const curve = certificate.publicKey.asymmetricKeyDetails?.namedCurve
  if (curve !== COSE_ALGORITHMS[signer.algorithm].curve) {
    throw new EifBadCertificateError(
      `signer.algorithm ${signer.algorithm} needs a ${COSE_ALGORITHMS[signer.algorithm].curve} key but the certificate's key is ${curve ?? 'not EC'}`,
    )
  }
  return certificate
}

/** The PCR0 record that is signed: {register_index: 0, register_value: [48 integers]}. */
export function encodePcrPayload(pcr0: Uint8Array): Uint8Array {
  return encodeCbor(
    new Map<string, unknown>([
      ['register_index', 0],
      ['register_value', Array.from(pcr0)],
    ]),
  )
}

/** Builds the signature section: a CBOR array of one {signing_certificate, signature} map. */
export async function buildSignatureSection(
  signer: EifSigner,
  certificate: X509Certificate,
  pcr0: Buffer,
): Promise<Buffer> {
  let cose: Uint8Array
  try {
    cose = await signCoseSign1With(encodePcrPayload(pcr0), signer.algorithm, (toBeSigned) =>
      signer.sign(Buffer.from(toBeSigned.buffer, toBeSigned.byteOffset, toBeSigned.byteLength)),
    )
  } catch (err) {
    if (err instanceof CoseSignerFailedError) {
      throw new EifSignerFailedError('the signer failed to sign PCR0', { cause: err.cause })
    }
    if (err instanceof CoseBadSignerOutputError) throw new EifSignerFailedError(err.message, { cause: err })
    throw err
  }
  // nitro-cli stores the certificate as PEM text and both fields as arrays of byte integers.
  const pem = Buffer.from(certificate.toString(), 'utf8')
  return Buffer.from(
    encodeCbor([
      new Map<string, unknown>([
        ['signing_certificate', Array.from(pem)],
        ['signature', Array.from(cose)],
      ]),
    ]),
  )
}

export interface SignatureSection {
  /** The certificate bytes as stored (nitro-cli: PEM). */
  certificate: Buffer
  /** The serialized COSE_Sign1. */
  signature: Buffer
}

function byteArray(value: unknown): Buffer | undefined {
  if (value instanceof Uint8Array) return Buffer.from(value)
  if (!Array.isArray(value)) return undefined
  for (const v of value) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) return undefined
  }
  return Buffer.from(value as number[])
}

/** Parses the signature section; only element 0 is used, as in nitro-cli. */
export function decodeSignatureSection(bytes: Uint8Array, where: EifErrorLocation = {}): SignatureSection {
  let value: unknown
  try {
    value = decodeCbor(bytes, 'the signature section')
  } catch (cause) {
    throw new EifBadSignatureSectionError('the signature section is not valid CBOR', { ...where, cause })
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new EifBadSignatureSectionError('the signature section is not a non-empty CBOR array', where)
  }
  const first = value[0]
  if (!(first instanceof Map)) {
    throw new EifBadSignatureSectionError('the signature section entry is not a CBOR map', where)
  }
  const certificate = byteArray(first.get('signing_certificate'))
  const signature = byteArray(first.get('signature'))
  if (certificate === undefined || signature === undefined) {
    throw new EifBadSignatureSectionError(
      'the signature section entry needs signing_certificate and signature as arrays of byte integers',
      where,
    )
  }
  return { certificate, signature }
}

/** Outcome of checking an EIF's signature against the PCR0 computed from its contents. */
export interface EifSignatureCheck {
  algorithm: CoseAlgorithm | undefined
  certificate: X509Certificate
  /** The COSE signature verifies with the certificate's key. */
  signatureValid: boolean
  /** The signed record is {register_index: 0, register_value: computed PCR0}. */
  pcr0Matches: boolean
  /** `now` is inside the certificate's validity period. */
  certificateTimeValid: boolean
  /** All three hold. */
  ok: boolean
  /** Why `ok` is false, for humans. */
  problem?: string
}

export function checkSignature(
  section: SignatureSection,
  pcr0: Buffer,
  now: Date,
  where: EifErrorLocation = {},
): EifSignatureCheck {
  const certificate = parseCertificate(section.certificate, where)
  let decoded: CoseSign1
  try {
    decoded = decodeCoseSign1(section.signature)
  } catch (cause) {
    throw new EifBadSignatureSectionError((cause as Error).message, { ...where, cause })
  }
  if (decoded.algorithm === undefined) {
    throw new EifBadSignatureSectionError(
      `COSE_Sign1 algorithm ${String(decoded.algorithmId)} is not ES256 (-7), ES384 (-35) or ES512 (-36)`,
      where,
    )
  }
  const signatureValid = verifies(decoded, certificate.publicKey)
  const pcr0Matches = payloadMatches(decoded.payload, pcr0)
  const t = now.getTime()
  const certificateTimeValid = t >= Date.parse(certificate.validFrom) && t <= Date.parse(certificate.validTo)
  const ok = signatureValid && pcr0Matches && certificateTimeValid
  const check: EifSignatureCheck = {
    algorithm: decoded.algorithm,
    certificate,
    signatureValid,
    pcr0Matches,
    certificateTimeValid,
    ok,
  }
  if (!signatureValid) check.problem = "the COSE signature does not verify with the certificate's key"
  else if (!pcr0Matches) check.problem = "the signed PCR0 is not the image's PCR0"
  else if (!certificateTimeValid) {
    check.problem = `the signing certificate is valid from ${certificate.validFrom} to ${certificate.validTo}`
  }
  return check
}

/** A certificate key that cannot check this algorithm (RSA, another curve) is a failed check. */
function verifies(decoded: CoseSign1, key: KeyObject): boolean {
  try {
    return checkCoseSign1Signature(decoded, key)
  } catch (err) {
    if (err instanceof CoseError) return false
    throw err
  }
}

function payloadMatches(payload: Uint8Array, pcr0: Buffer): boolean {
  let value: unknown
  try {
    value = decodeCbor(payload, 'the signed PCR0 record')
  } catch {
    return false
  }
  if (!(value instanceof Map) || value.size !== 2) return false
  if (value.get('register_index') !== 0) return false
  const register = byteArray(value.get('register_value'))
  return register !== undefined && register.length === PCR_SIZE && register.equals(pcr0)
}

const OID_NAMES: Record<string, string> = {
  '2.5.4.3': 'commonName',
  '2.5.4.4': 'surname',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'countryName',
  '2.5.4.7': 'localityName',
  '2.5.4.8': 'stateOrProvinceName',
  '2.5.4.9': 'streetAddress',
  '2.5.4.10': 'organizationName',
  '2.5.4.11': 'organizationalUnitName',
  '2.5.4.12': 'title',
  '2.5.4.17': 'postalCode',
  '2.5.4.42': 'givenName',
  '0.9.2342.19200300.100.1.25': 'domainComponent',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.113549.1.1.10': 'rsassaPss',
  '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
  '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption',
  '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
  '1.3.101.112': 'ED25519',
}

/** nitro-cli's describe-eif `SigningCertificate` object. */
export interface SigningCertificateInfo {
  /** Issuer attributes by OpenSSL long name (commonName, organizationName, …). */
  IssuerName: Record<string, string>
  /** Signature algorithm, OpenSSL long name (e.g. ecdsa-with-SHA384). */
  Algorithm: string
  /** OpenSSL time format, e.g. `Jan  1 00:00:00 2025 GMT`. */
  NotBefore: string
  NotAfter: string
  /** The certificate's signature, uppercase hex bytes joined by ':'. */
  Signature: string
}

export function certificateInfo(certificate: X509Certificate): SigningCertificateInfo {
  const parsed = AsnConvert.parse(certificate.raw, Certificate)
  const issuer: Record<string, string> = {}
  for (const rdn of parsed.tbsCertificate.issuer) {
    for (const attribute of rdn) {
      issuer[OID_NAMES[attribute.type] ?? attribute.type] = attribute.value.toString()
    }
  }
  const sorted: Record<string, string> = {}
  for (const key of Object.keys(issuer).sort()) sorted[key] = issuer[key]!
  const algorithm = parsed.signatureAlgorithm.algorithm
  return {
    IssuerName: sorted,
    Algorithm: OID_NAMES[algorithm] ?? algorithm,
    NotBefore: certificate.validFrom,
    NotAfter: certificate.validTo,
    Signature: Array.from(new Uint8Array(parsed.signatureValue), (b) =>
      b.toString(16).toUpperCase().padStart(2, '0'),
    ).join(':'),
  }
}
