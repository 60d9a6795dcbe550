// Test certificates made with the openssl CLI (a real CA and real leaf certificates).
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface Pem {
  readonly cert: string
  readonly key: string
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' })
}

/** A self-signed CA in `dir`/<name>.{crt,key}; returns the paths. */
export function makeCa(dir: string, name: string): Pem {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ])
  return { cert, key }
}

/** A leaf signed by `ca`, for serverAuth (with `san`) or clientAuth. */
export function makeLeaf(
  dir: string,
  name: string,
  ca: Pem,
  { san, client = false }: { san?: string; client?: boolean } = {},
): Pem {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  writeFileSync(
    ext,
    `basicConstraints=CA:FALSE\nextendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}\n${san ? `subjectAltName=${san}\n` : ''}`,
  )
  openssl([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    `/CN=${name}`,
  ])
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '2',
    '-extfile',
    ext,
  ])
  return { cert, key }
}
