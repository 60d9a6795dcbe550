/**
 * @peculiar/asn1-schema and @peculiar/asn1-x509, loaded on first use with require(). Importing them
 * as ESM made Node lex every one of their CommonJS files for named exports before running them
 * (about a third of this package's import time); loading them lazily also spares importers that
 * never parse a certificate (an NSM client, a dev NSM serving documents) the whole cost.
 */

import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

type Asn1Schema = typeof import('@peculiar/asn1-schema')
type Asn1X509 = typeof import('@peculiar/asn1-x509')

let loaded: { schema: Asn1Schema; x509: Asn1X509 } | undefined

/** @internal the two ASN.1 modules, loaded once. */
export function asn1(): { schema: Asn1Schema; x509: Asn1X509 } {
  if (!loaded) {
    const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url))
    const require = createRequire(join(here, '..', 'package.json'))
    loaded = {
      schema: require('@peculiar/asn1-schema') as Asn1Schema,
      x509: require('@peculiar/asn1-x509') as Asn1X509,
    }
  }
  return loaded
}

/** Extension OIDs and keyUsage bits as constants, so that using them loads nothing. */
export const OID = Object.freeze({
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
})
export const KEY_USAGE = Object.freeze({ digitalSignature: 1, keyCertSign: 32 })
