import { readFileSync, statSync } from 'node:fs'
import {
  type AttestationDocument,
  createAttestationVerifier,
  fromHex,
  toHex,
  VerificationFailedError,
  type VerificationResult,
} from '@enclave/attestation'
import { type Command, InvalidArgumentError } from 'commander'
import type { CommandContext } from '../context.js'

const MAX_INPUT = 1024 * 1024

/** Raw COSE_Sign1 starts with 0x84 (array of 4) or 0xD2 (tag 18); anything else is read as base64. */
function documentBytes(content: Buffer): Uint8Array {
  if (content[0] === 0x84 || content[0] === 0xd2) return new Uint8Array(content)
  const text = content.toString('latin1').replace(/\s+/g, '')
  if (text.length > 0 && /^[A-Za-z0-9+/_-]+={0,2}$/.test(text))
    return new Uint8Array(Buffer.from(text, 'base64'))
  return new Uint8Array(content) // let the verifier report it as malformed
}

function parsePcr(value: string, previous: Record<number, string> = {}): Record<number, string> {
  const match = /^(\d{1,2})=((?:0x)?[0-9a-fA-F]+)$/.exec(value)
  const index = match ? Number(match[1]) : -1
  const bytes = match ? fromHex(match[2]!) : undefined
  if (!match || index > 31 || !bytes || ![32, 48, 64].includes(bytes.length)) {
    throw new InvalidArgumentError(`expected N=HEX with N in 0..31 and 96 hex digits, got "${value}"`)
  }
  return { ...previous, [index]: toHex(bytes) }
}

function parseTime(value: string): number {
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`not an ISO 8601 time: "${value}"`)
  return ms
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

function field(bytes: Uint8Array | null): string {
  if (bytes === null) return 'null'
  const printable = /^[\x20-\x7e]*$/.test(Buffer.from(bytes).toString('latin1'))
  return `${toHex(bytes)} (${bytes.length} bytes${printable && bytes.length > 0 ? `, "${Buffer.from(bytes).toString('latin1')}"` : ''})`
}

function documentJson(doc: AttestationDocument) {
  return {
    module_id: doc.moduleId,
    digest: doc.digest,
    timestamp: doc.timestamp,
    timestamp_iso: new Date(doc.timestamp).toISOString(),
    pcrs: Object.fromEntries([...doc.pcrs].map(([i, v]) => [i, toHex(v)])),
    certificate: toHex(doc.certificate),
    cabundle: doc.cabundle.map(toHex),
    public_key: doc.publicKey && toHex(doc.publicKey),
    user_data: doc.userData && toHex(doc.userData),
    nonce: doc.nonce && toHex(doc.nonce),
  }
}

function text(result: VerificationResult): string {
  const lines: string[] = []
  const doc = result.document
  if (doc) {
    lines.push(`module_id:  ${doc.moduleId}`, `digest:     ${doc.digest}`)
    lines.push(`timestamp:  ${new Date(doc.timestamp).toISOString()} (${doc.timestamp})`, 'pcrs:')
    for (const [i, v] of doc.pcrs) lines.push(`  ${String(i).padStart(2)}: ${toHex(v)}`)
    lines.push(
      `public_key: ${field(doc.publicKey)}`,
      `user_data:  ${field(doc.userData)}`,
      `nonce:      ${field(doc.nonce)}`,
    )
    lines.push(`cabundle:   ${doc.cabundle.length} certificates; leaf ${doc.certificate.length} bytes`)
  }
  lines.push(`checked at: ${new Date(result.verifiedAt).toISOString()}`)
  lines.push(`verdict:    ${result.ok ? 'VALID' : 'INVALID'}`)
  for (const f of result.failures) lines.push(`  - ${f.reason}: ${f.message}`)
  return `${lines.join('\n')}\n`
}

interface AttestOptions {
  pcr?: Record<number, string>
  at?: number
  root?: string[]
  allowDebug?: boolean
  json?: boolean
}

/** `enclaver attest verify FILE`: decode and verify an attestation document; exit 0 valid, 1 invalid, 2 usage. */
export function registerAttest(program: Command, ctx: CommandContext): void {
  const attest = program.command('attest').description('work with AWS Nitro attestation documents')
  attest
    .command('verify')
    .description(
      'verify an attestation document (raw COSE_Sign1 or base64; "-" reads stdin) against the AWS root and a policy; ' +
        'exit 0 valid, 1 invalid (every reason is printed), 2 usage error',
    )
    .argument('<file>', 'the document: raw bytes or base64 text')
    .option('--pcr <N=HEX>', 'expected PCR value (repeatable)', parsePcr)
    .option(
      '--at <iso-time>',
      'verify as of this time instead of now (recorded documents live 3 hours)',
      parseTime,
    )
    .option(
      '--root <pem-file>',
      'trust this root certificate instead of AWS Nitro Enclaves Root G1 (repeatable)',
      collect,
    )
    .option('--allow-debug', 'accept debug-mode documents (PCR0 all zero)')
    .option('--json', 'print JSON instead of text')
    .action((file: string, options: AttestOptions, command: Command) => {
      let content: Buffer
      let roots: string[] | undefined
      try {
        // documents are under 16 KiB; refuse to slurp anything large
        if (file !== '-' && statSync(file).size > MAX_INPUT) throw new Error(`larger than ${MAX_INPUT} bytes`)
        content = readFileSync(file === '-' ? 0 : file)
        if (content.length > MAX_INPUT) throw new Error(`larger than ${MAX_INPUT} bytes`)
        roots = options.root?.map((path) => readFileSync(path, 'utf8'))
      } catch (err) {
        command.error(
          `enclaver attest verify: cannot read ${(err as { path?: string }).path ?? file}: ${(err as Error).message}`,
          {
            exitCode: 2,
            code: 'enclaver.usage',
          },
        )
      }
      let verifier: ReturnType<typeof createAttestationVerifier>
      try {
        verifier = createAttestationVerifier({
          roots,
          pcrs: options.pcr,
          allowDebug: options.allowDebug === true,
        })
      } catch (err) {
        command.error(`enclaver attest verify: ${(err as Error).message}`, {
          exitCode: 2,
          code: 'enclaver.usage',
        })
      }
      const result = verifier.verify(documentBytes(content), { at: options.at })
      if (options.json) {
        ctx.out(
          `${JSON.stringify(
            {
              valid: result.ok,
              verified_at: new Date(result.verifiedAt).toISOString(),
              failures: result.failures,
              document: result.document ? documentJson(result.document) : null,
            },
            null,
            2,
          )}\n`,
        )
      } else {
        ctx.out(text(result))
      }
      if (!result.ok) throw new VerificationFailedError(result.failures)
    })
}
