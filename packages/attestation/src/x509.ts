/**
 * What verification needs from a certificate, parsed once: Node's X509Certificate for the key and
 * signature check, @peculiar/asn1-x509 for the fields Node does not expose (pathLen, keyUsage,
 * critical extensions).
 */

import { createHash, type KeyObject, X509Certificate } from 'node:crypto'
import { asn1, KEY_USAGE, OID } from './asn1.js'
import { MalformedError } from './errors.js'

export interface CertInfo {
  /** SHA-256 of the DER, hex. */
  readonly fingerprint: string
  readonly der: Uint8Array
  readonly x509: X509Certificate
  readonly publicKey: KeyObject
  readonly subject: string
  readonly notBefore: number
  readonly notAfter: number
  /** basicConstraints cA; false when the extension is absent. */
  readonly isCA: boolean
  readonly pathLen: number | undefined
  /** keyUsage bits (KeyUsageFlags), undefined when the extension is absent. */
  readonly keyUsage: number | undefined
  /** OIDs of critical extensions this verifier does not understand (RFC 5280: reject). */
  readonly unknownCritical: readonly string[]
}

const UNDERSTOOD = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
])

export function fingerprintOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex')
}

export const KEY_CERT_SIGN = KEY_USAGE.keyCertSign
export const DIGITAL_SIGNATURE = KEY_USAGE.digitalSignature

/** Parses a DER certificate; throws MalformedError naming `label` when it does not parse. */
export function parseCertificate(der: Uint8Array, label: string, fingerprint = fingerprintOf(der)): CertInfo {
  try {
    const x509 = new X509Certificate(der)
    const { AsnConvert } = asn1().schema
    const { BasicConstraints, Certificate, KeyUsage } = asn1().x509
    const asn = AsnConvert.parse(der, Certificate)
    let isCA = false
    let pathLen: number | undefined
    let keyUsage: number | undefined
    const unknownCritical: string[] = []
    for (const ext of asn.tbsCertificate.extensions ?? []) {
      if (ext.extnID === OID.basicConstraints) {
        const bc = AsnConvert.parse(ext.extnValue, BasicConstraints)
        isCA = bc.cA
        pathLen = bc.pathLenConstraint
      } else if (ext.extnID === OID.keyUsage) {
        keyUsage = AsnConvert.parse(ext.extnValue, KeyUsage).toNumber()
      } else if (ext.critical && !UNDERSTOOD.has(ext.extnID)) {
        unknownCritical.push(ext.extnID)
      }
    }
    const validity = asn.tbsCertificate.validity
    return {
      fingerprint,
      der: new Uint8Array(der),
      x509,
      publicKey: x509.publicKey,
      subject: x509.subject.replace(/\n/g, ', '),
      notBefore: validity.notBefore.getTime().getTime(),
      notAfter: validity.notAfter.getTime().getTime(),
      isCA,
      pathLen,
      keyUsage,
      unknownCritical,
    }
  } catch (err) {
    if (err instanceof MalformedError) throw err
    throw new MalformedError(`${label} is not a valid X.509 certificate: ${(err as Error).message}`, {
      cause: err,
    })
  }
}
