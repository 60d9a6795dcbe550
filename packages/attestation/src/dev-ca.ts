/**
 * The dev NSM's persisted CA: root → intermediate → leaf, all P-384, in one folder.
 * - ca.pem (0600): root certificate + key, intermediate certificate + key. Created once with
 *   link(2) from a temporary file, so concurrent first runs agree on one CA.
 * - leaf.pem (0600): leaf certificate + key, replaced atomically (rename) when it nears expiry.
 * - root.crt.pem (0644): the root certificate alone, to give to verifiers.
 */

import {
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
  webcrypto,
  X509Certificate,
} from 'node:crypto'
import { chmodSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { derToPem, pemToDer } from './bytes.js'
import { DevCaError } from './errors.js'
import { generateEcKey, importSigningKey, issueCertificate } from './x509-issue.js'

export interface DevCaCert {
  readonly der: Uint8Array
  readonly x509: X509Certificate
  readonly key: KeyObject
  readonly keyPem: string
}

export interface DevCa {
  readonly dir: string
  readonly root: DevCaCert
  readonly intermediate: DevCaCert
  /** The leaf valid at the time of the last `leafAt` call. */
  leafAt(now: number): Promise<DevCaCert>
}

const ROOT_NAME = 'CN=enclave-dev-nsm root, O=Enclave Framework (dev; untrusted)'
const INTERMEDIATE_NAME = 'CN=enclave-dev-nsm intermediate, O=Enclave Framework (dev; untrusted)'
const HOUR = 3600_000
const YEAR = 365 * 24 * HOUR

/** $XDG_CONFIG_HOME/enclave/dev-nsm, else ~/.config/enclave/dev-nsm. */
export function defaultDevNsmDir(): string {
  const base = process.env.XDG_CONFIG_HOME || join(homedir(), '.config')
  return join(base, 'enclave', 'dev-nsm')
}

function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  writeFileSync(tmp, content, { mode, flag: 'wx' })
  chmodSync(tmp, mode) // umask may have narrowed or the mode option been ignored
  renameSync(tmp, path)
}

function pemBlocks(text: string, label: string): string[] {
  return [
    ...text.matchAll(new RegExp(`-----BEGIN ${label}-----[A-Za-z0-9+/=\\s]+-----END ${label}-----\\n?`, 'g')),
  ].map((m) => m[0])
}

function loadPair(
  certPem: string | undefined,
  keyPem: string | undefined,
  path: string,
  what: string,
): DevCaCert {
  try {
    if (!certPem || !keyPem) throw new Error(`missing the ${what} certificate or key`)
    const der = pemToDer(certPem)!
    const x509 = new X509Certificate(der)
    const key = createPrivateKey(keyPem)
    const pub = createPublicKey(key).export({ type: 'spki', format: 'der' })
    if (!pub.equals(x509.publicKey.export({ type: 'spki', format: 'der' }))) {
      throw new Error(`the ${what} key does not match its certificate`)
    }
    return { der, x509, key, keyPem }
  } catch (err) {
    throw new DevCaError(
      `dev CA file ${path} is unusable (${(err as Error).message}); delete it to create a new dev CA`,
      {
        cause: err,
      },
    )
  }
}

async function createCaFile(path: string, now: number): Promise<void> {
  const rootKey = await generateEcKey('P-384')
  const interKey = await generateEcKey('P-384')
  const rootDer = await issueCertificate({
    subject: ROOT_NAME,
    publicKey: rootKey.cryptoKey.publicKey,
    selfKey: rootKey.cryptoKey.privateKey,
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 30 * YEAR),
    caPathLen: null,
  })
  const interDer = await issueCertificate({
    subject: INTERMEDIATE_NAME,
    issuer: { name: ROOT_NAME, key: rootKey.cryptoKey.privateKey, publicKey: rootKey.cryptoKey.publicKey },
    publicKey: interKey.cryptoKey.publicKey,
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 10 * YEAR),
    caPathLen: 0,
  })
  const content = derToPem(rootDer) + rootKey.privateKeyPem + derToPem(interDer) + interKey.privateKeyPem
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  writeFileSync(tmp, content, { mode: 0o600, flag: 'wx' })
  chmodSync(tmp, 0o600)
  try {
    linkSync(tmp, path) // fails with EEXIST when another process created the CA first: use theirs
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  } finally {
    rmSync(tmp, { force: true })
  }
}

/** Loads the CA under `dir`, creating it on first use. `now` only dates new certificates. */
export async function openDevCa(dir: string, now: number): Promise<DevCa> {
  const caPath = join(dir, 'ca.pem')
  const leafPath = join(dir, 'leaf.pem')
  let text: string
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    try {
      text = readFileSync(caPath, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      await createCaFile(caPath, now)
      text = readFileSync(caPath, 'utf8')
    }
  } catch (err) {
    if (err instanceof DevCaError) throw err
    throw new DevCaError(`cannot create or read the dev CA in ${dir}: ${(err as Error).message}`, {
      cause: err,
    })
  }
  const certs = pemBlocks(text, 'CERTIFICATE')
  const keys = pemBlocks(text, 'PRIVATE KEY')
  const root = loadPair(certs[0], keys[0], caPath, 'root')
  const intermediate = loadPair(certs[1], keys[1], caPath, 'intermediate')
  if (!intermediate.x509.verify(root.x509.publicKey)) {
    throw new DevCaError(
      `dev CA file ${caPath}: the intermediate is not signed by the root; delete it to start anew`,
    )
  }
  const rootPem = derToPem(root.der)
  try {
    const existing = readFileSync(join(dir, 'root.crt.pem'), 'utf8')
    if (existing !== rootPem) writeAtomic(join(dir, 'root.crt.pem'), rootPem, 0o644)
  } catch {
    writeAtomic(join(dir, 'root.crt.pem'), rootPem, 0o644)
  }

  let leaf: DevCaCert | undefined
  let intermediateSigner: webcrypto.CryptoKey | undefined

  async function issueLeaf(now: number): Promise<DevCaCert> {
    intermediateSigner ??= await importSigningKey(intermediate.keyPem)
    const interPublic = await importPublic(intermediate.x509)
    const key = await generateEcKey('P-384')
    const der = await issueCertificate({
      subject: `CN=enclave-dev-nsm leaf ${randomBytes(4).toString('hex')}, O=Enclave Framework (dev; untrusted)`,
      issuer: { name: INTERMEDIATE_NAME, key: intermediateSigner, publicKey: interPublic },
      publicKey: key.cryptoKey.publicKey,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now - 60_000 + 3 * HOUR),
    })
    writeAtomic(leafPath, derToPem(der) + key.privateKeyPem, 0o600)
    return { der, x509: new X509Certificate(der), key: key.privateKey, keyPem: key.privateKeyPem }
  }

  function usable(cert: DevCaCert, now: number): boolean {
    // at least an hour left so a document signed now can be verified for a while
    return Date.parse(cert.x509.validFrom) <= now && Date.parse(cert.x509.validTo) - now >= HOUR
  }

  return {
    dir,
    root,
    intermediate,
    async leafAt(now) {
      if (leaf && usable(leaf, now)) return leaf
      try {
        const text = readFileSync(leafPath, 'utf8')
        const candidate = loadPair(
          pemBlocks(text, 'CERTIFICATE')[0],
          pemBlocks(text, 'PRIVATE KEY')[0],
          leafPath,
          'leaf',
        )
        if (candidate.x509.verify(intermediate.x509.publicKey) && usable(candidate, now)) {
          leaf = candidate
          return leaf
        }
      } catch {
        // absent, unreadable or from an older CA: issue a new one below
      }
      leaf = await issueLeaf(now)
      return leaf
    },
  }
}

async function importPublic(cert: X509Certificate): Promise<webcrypto.CryptoKey> {
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' })
  return webcrypto.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-384' }, true, [
    'verify',
  ]) as Promise<webcrypto.CryptoKey>
}
