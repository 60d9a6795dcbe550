import * as asn1x509 from '@peculiar/asn1-x509'
import { KeyUsageFlags } from '@peculiar/asn1-x509'
import { describe, expect, it } from 'vitest'
import { KEY_USAGE, OID } from '../src/asn1.js'

// The OIDs and keyUsage bits are spelt out so that importing the package loads no ASN.1 code;
// this guards them against drifting from the library that parses the certificates.
describe('ASN.1 constants used without loading @peculiar', () => {
  it('match @peculiar/asn1-x509', () => {
    expect(OID).toEqual({
      basicConstraints: asn1x509.id_ce_basicConstraints,
      keyUsage: asn1x509.id_ce_keyUsage,
      extKeyUsage: asn1x509.id_ce_extKeyUsage,
      subjectAltName: asn1x509.id_ce_subjectAltName,
      subjectKeyIdentifier: asn1x509.id_ce_subjectKeyIdentifier,
      authorityKeyIdentifier: asn1x509.id_ce_authorityKeyIdentifier,
    })
    expect(KEY_USAGE).toEqual({
      digitalSignature: KeyUsageFlags.digitalSignature,
      keyCertSign: KeyUsageFlags.keyCertSign,
    })
  })
})
