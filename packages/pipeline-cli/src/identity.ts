import { createHash, createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { chmod, link, mkdir, open, readFile, unlink } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { AuthorizedKeysInvalidError, IdentityInvalidError } from './errors.js'

/**
 * An endpoint's TLS identity: an Ed25519 key and a self-signed certificate for it. Trust is never
 * derived from the certificate's names or issuer, only from the key's fingerprint.
 */
export interface Identity {
  /** PEM of the PKCS#8 private key. */
  readonly key: string
  /** PEM of the self-signed certificate. */
  readonly cert: string
  /** `sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo. */
  readonly fingerprint: string
}

const FINGERPRINT = /^sha256:[0-9a-f]{64}$/

/** The fingerprint of a public key in DER SubjectPublicKeyInfo form. */
export function fingerprintOfSpki(spki: Uint8Array): string {
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`
}

/** The fingerprint of the key in a certificate (PEM or DER). */
export function fingerprintOfCertificate(cert: string | Uint8Array | X509Certificate): string {
  const parsed = cert instanceof X509Certificate ? cert : new X509Certificate(cert)
  return fingerprintOfSpki(parsed.publicKey.export({ type: 'spki', format: 'der' }))
}

/** Accepts `sha256:<64 hex>` (any case); throws naming the expected form otherwise. */
export function parseFingerprint(text: string, where = 'fingerprint'): string {
  const normal = text.trim().toLowerCase()
  if (!FINGERPRINT.test(normal)) {
    throw new AuthorizedKeysInvalidError(
      `${where}: "${text.slice(0, 80)}" is not a key fingerprint; expected sha256: followed by 64 hex digits (see \`pipeline keygen\`)`,
    )
  }
  return normal
}

/** Creates a new Ed25519 identity (a self-signed certificate valid for 100 years). */
export async function generateIdentity(commonName = 'enclave-pipeline'): Promise<Identity> {
  // Loaded on demand: only key generation needs an X.509 writer, and it is slow to import.
  // @peculiar/x509 throws at import unless reflect-metadata is loaded first.
  await import('reflect-metadata')
  const x509 = await import('@peculiar/x509')
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])
  const algorithm = { name: 'Ed25519' }
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair
  const now = Date.now()
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: `CN=${commonName.replace(/[,=+<>#;"\\]/g, '_')}`,
    notBefore: new Date(now - 24 * 3600 * 1000),
    notAfter: new Date(now + 100 * 365 * 24 * 3600 * 1000),
    signingAlgorithm: algorithm,
    keys,
  })
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey))
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8
    .toString('base64')
    .replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`
  const cert = certificate.toString('pem').replace(/\r\n/g, '\n').trimEnd().concat('\n')
  return { key, cert, fingerprint: fingerprintOfCertificate(cert) }
}

/** Parses an identity file: a PKCS#8 private key PEM and a certificate PEM, in one file. */
export function parseIdentity(pem: string, path = 'identity'): Identity {
  const keyMatch = pem.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/)
  const certMatch = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/)
  if (!keyMatch || !certMatch) {
    throw new IdentityInvalidError(
      `${path} must hold a PRIVATE KEY and a CERTIFICATE in PEM form; create one with \`pipeline keygen --identity ${path}\``,
    )
  }
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(certMatch[0])
    const privateKey = createPrivateKey(keyMatch[0])
    if (!certificate.checkPrivateKey(privateKey)) throw new Error('the certificate is for another key')
  } catch (error) {
    throw new IdentityInvalidError(`${path} is not a usable identity: ${(error as Error).message}`, {
      cause: error,
    })
  }
  return { key: keyMatch[0], cert: certMatch[0], fingerprint: fingerprintOfCertificate(certificate) }
}

/** Reads an identity file; the error names the path and how to create one. */
export async function loadIdentity(path: string): Promise<Identity> {
  let pem: string
  try {
    pem = await readFile(path, 'utf8')
  } catch (error) {
    throw new IdentityInvalidError(
      `cannot read the identity file ${path} (${(error as NodeJS.ErrnoException).code ?? error}); create one with \`pipeline keygen --identity ${path}\``,
      { cause: error },
    )
  }
  return parseIdentity(pem, path)
}

/**
 * Writes a new identity to `path` with mode 0600, atomically and without replacing an existing
 * file: the PEM goes to a temp file which is then hard-linked into place (link fails with EEXIST
 * if another process won the race, and then that process's identity is used).
 */
export async function createIdentityFile(
  path: string,
  { overwrite = false, commonName }: { overwrite?: boolean; commonName?: string } = {},
): Promise<{ identity: Identity; created: boolean }> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const identity = await generateIdentity(commonName)
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  const handle = await open(
    temp,
    fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
    0o600,
  )
  try {
    await handle.writeFile(`${identity.key}${identity.cert}`)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    if (overwrite) await unlink(path).catch(() => undefined)
    await link(temp, path)
    return { identity, created: true }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    return { identity: await loadIdentity(path), created: false }
  } finally {
    await unlink(temp).catch(() => undefined)
  }
}

/** The per-user config folder: $XDG_CONFIG_HOME/enclave-pipeline, else ~/.config/enclave-pipeline. */
export function userConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : undefined
  return join(base ?? join(homedir(), '.config'), 'enclave-pipeline')
}

/**
 * The dev identity (`<user config dir>/dev-identity.pem`), created on first use. Both ends of a
 * dev-mode connection use it and trust only it, so dev mode needs no setup yet is still TLS with
 * mutual key checks; it is per user, so another user's process cannot act as your server.
 */
export async function loadDevIdentity(env: NodeJS.ProcessEnv = process.env): Promise<Identity> {
  const path = join(userConfigDir(env), 'dev-identity.pem')
  try {
    return await loadIdentity(path)
  } catch (error) {
    const missing = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
    if (!missing) throw error
  }
  const { identity } = await createIdentityFile(path, { commonName: 'enclave-pipeline-dev' })
  await chmod(path, 0o600)
  return identity
}

/**
 * Parses an authorized-keys file: one `sha256:<hex>` fingerprint per line, optionally followed by
 * a name; `#` starts a comment. Returns the fingerprints.
 */
export function parseAuthorizedKeys(text: string, path = 'authorized keys'): Set<string> {
  const keys = new Set<string>()
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') return
    const [first = ''] = line.split(/\s+/)
    keys.add(parseFingerprint(first, `${path} line ${index + 1}`))
  })
  return keys
}

/** Reads an authorized-keys file (see parseAuthorizedKeys). */
export async function loadAuthorizedKeys(path: string): Promise<Set<string>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new AuthorizedKeysInvalidError(
      `cannot read the authorized-keys file ${path} (${(error as NodeJS.ErrnoException).code ?? error})`,
      { cause: error },
    )
  }
  return parseAuthorizedKeys(text, path)
}
