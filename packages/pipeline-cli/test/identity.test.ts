import { statSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { afterAll, describe, expect, it } from 'vitest'
import {
  AuthorizedKeysInvalidError,
  createIdentityFile,
  IdentityInvalidError,
  loadDevIdentity,
  loadIdentity,
  parseAuthorizedKeys,
} from '../src/index.js'

const temp = makeTempDir('pipeline-identity-')
afterAll(() => temp.remove())

describe('identities', () => {
  it('creates an identity file with mode 0600 and loads it back', async () => {
    const path = join(temp.path, 'id', 'client.pem')
    const { identity, created } = await createIdentityFile(path)
    expect(created).toBe(true)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect((await loadIdentity(path)).fingerprint).toBe(identity.fingerprint)
    expect(identity.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/)
  })

  it('creates the dev identity once, even when raced', async () => {
    const env = { XDG_CONFIG_HOME: join(temp.path, 'xdg') }
    const all = await Promise.all(Array.from({ length: 5 }, () => loadDevIdentity(env)))
    expect(new Set(all.map((identity) => identity.fingerprint)).size).toBe(1)
    expect(statSync(join(temp.path, 'xdg/enclave-pipeline/dev-identity.pem')).mode & 0o777).toBe(0o600)
  })

  it('rejects a file that is not an identity, naming the fix', async () => {
    await expect(loadIdentity(join(temp.path, 'missing.pem'))).rejects.toThrow(/pipeline keygen/)
    const { writeFileSync } = await import('node:fs')
    writeFileSync(join(temp.path, 'bad.pem'), 'nope')
    await expect(loadIdentity(join(temp.path, 'bad.pem'))).rejects.toBeInstanceOf(IdentityInvalidError)
  })

  it('parses authorized keys with comments and names', () => {
    const a = `sha256:${'A'.repeat(64)}`
    const keys = parseAuthorizedKeys(`# ops\n${a} alice\n\n  sha256:${'b'.repeat(64)}  # bob\n`)
    expect([...keys]).toEqual([a.toLowerCase(), `sha256:${'b'.repeat(64)}`])
    expect(() => parseAuthorizedKeys('ssh-ed25519 AAAA', 'keys')).toThrow(AuthorizedKeysInvalidError)
    expect(() => parseAuthorizedKeys('ssh-ed25519 AAAA', 'keys')).toThrow(/keys line 1/)
  })
})
