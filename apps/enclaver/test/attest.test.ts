import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeTempDir, runCli } from '@enclave/test-helpers'
import { afterAll, describe, expect, it } from 'vitest'

const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const FIXTURES = fileURLToPath(new URL('../../../packages/attestation/test/fixtures/', import.meta.url))
const NOSTR = join(FIXTURES, 'nostrband/nostrband_i-0ffff615a409a72d7_2025-04-01.b64')
const NOSTR_AT = '2025-04-01T14:17:00Z'
const NOSTR_PCR0 =
  '517a9ec66c4c8e8f3b309c4a4598e2383dff4ec07dfa48617c2d7ec9b1fbf86a597b4376b18114914a31af2ea12a2db6'
const DEBUG_RAW = join(FIXTURES, 'evervault/debug-mode-attestation-doc-bytes')
const DEBUG_AT = '2022-10-12T15:00:00Z'
const temp = makeTempDir('enclaver-attest-')
afterAll(() => temp.remove())

const verify = (...args: string[]) => runCli(BIN, ['attest', 'verify', ...args])

describe('enclaver attest verify', () => {
  it('exit 0 and the decoded document for a valid base64 document inside its window', async () => {
    const r = await verify(NOSTR, '--at', NOSTR_AT, '--pcr', `0=${NOSTR_PCR0}`)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('module_id:  i-0ffff615a409a72d7-enc0195f17eaba9b385')
    expect(r.stdout).toContain(`0: ${NOSTR_PCR0}`)
    expect(r.stdout).toMatch(/verdict:\s+VALID/)
  })

  it('--json prints the verdict, failures and fields', async () => {
    const r = await verify(DEBUG_RAW, '--at', DEBUG_AT, '--allow-debug', '--json')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.valid).toBe(true)
    expect(out.failures).toEqual([])
    expect(out.document.module_id).toBe('i-03ad7cdb817437eeb-enc0183cc7569b3f6e1')
    expect(Buffer.from(out.document.user_data, 'hex').toString()).toBe('hello, world!')
    expect(out.document.nonce).toBeNull()
  })

  it('exit 1 with every reason: expired, PCR mismatch and debug mode at once', async () => {
    const r = await verify(DEBUG_RAW, '--pcr', `0=${NOSTR_PCR0}`, '--json')
    expect(r.code).toBe(1)
    const out = JSON.parse(r.stdout)
    expect(out.valid).toBe(false)
    expect(new Set(out.failures.map((f: { reason: string }) => f.reason))).toEqual(
      new Set(['expired', 'pcr-mismatch', 'debug-mode']),
    )
    expect(r.stderr).toContain('ENCLAVE_ATTESTATION_VERIFICATION_FAILED')
  })

  it('exit 1 for a changed signature byte, and for bytes that are not a document', async () => {
    const bytes = Buffer.from(readFileSync(NOSTR, 'utf8').trim(), 'base64')
    bytes[bytes.length - 5]! ^= 1
    writeFileSync(join(temp.path, 'tampered.bin'), bytes)
    const r = await verify(join(temp.path, 'tampered.bin'), '--at', NOSTR_AT)
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/- bad-signature: /)
    writeFileSync(join(temp.path, 'junk'), 'not an attestation document\n')
    const junk = await verify(join(temp.path, 'junk'))
    expect(junk.code).toBe(1)
    expect(junk.stdout).toMatch(/- malformed: /)
  })

  it('--root replaces the pinned root (untrusted-root), and reads stdin with "-"', async () => {
    const der = readFileSync(join(FIXTURES, 'nostrband/nostrband_eif_signing_cert.der'))
    const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`
    writeFileSync(join(temp.path, 'other.pem'), pem)
    const r = await verify(NOSTR, '--at', NOSTR_AT, '--root', join(temp.path, 'other.pem'))
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/- untrusted-root: /)
    const piped = await runCli(BIN, ['attest', 'verify', '-', '--at', NOSTR_AT], {
      input: readFileSync(NOSTR),
    })
    expect(piped.code).toBe(0)
  })

  it('exit 2 for usage errors: bad --pcr, bad --at, missing file, unreadable root', async () => {
    for (const args of [
      [NOSTR, '--pcr', '0=zz'],
      [NOSTR, '--pcr', `40=${NOSTR_PCR0}`],
      [NOSTR, '--at', 'yesterday'],
      [join(temp.path, 'missing')],
      [NOSTR, '--root', join(temp.path, 'missing.pem')],
      [],
    ]) {
      const r = await verify(...args)
      expect(r.code, args.join(' ')).toBe(2)
    }
  })
})
