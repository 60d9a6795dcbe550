import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { computePcrs, pcrExtend } from '../src/index.js'

describe('pcrExtend and computePcrs: known answers from nitro-formats.md', () => {
  it('PCR3 of an IAM role ARN', () => {
    expect(pcrExtend('arn:aws:iam::123456789012:role/Webserver').toString('hex')).toBe(
      '78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef4fc1f1a452e315b9e98f9e312e6921e6',
    )
  })

  it('PCR4 of instance IDs', () => {
    expect(pcrExtend('i-1234567890abcdef0').toString('hex')).toBe(
      '08f996b5d43e047a9eb51e7f548bfee7e164fd7dc8f65541f2ac09d6545ac812719327281c401a67a10fcba87ae79ce0',
    )
    expect(pcrExtend('i-0ffff615a409a72d7').toString('hex')).toBe(
      '6386cee86c94b2a713c98e1d883134e8f2c019a17a712eb950fde15e9d6667575569c4e5c5e66eb9c920369961025fd2',
    )
  })

  it("PCR8 of nostr-enclaves' published EIF signing certificate", () => {
    const der = readFileSync(new URL('./fixtures/nostrband_eif_signing_cert.der', import.meta.url))
    const pcrs = computePcrs({ kernel: Buffer.alloc(0), cmdline: '', ramdisks: [], certificateDer: der })
    expect(pcrs.PCR8).toBe(
      '7e3f4c20f65f0a62de884a41ef73fd693c136173fec4ad19336d2ce3b1d63246da3383cbb83cd10dad77d5d1aafcdce1',
    )
  })

  it('extends a non-zero register and refuses a wrong-size one', () => {
    const first = pcrExtend('a')
    const second = pcrExtend('b', first)
    expect(second.toString('hex')).toBe(createHash('sha384').update(first).update('b').digest('hex'))
    expect(() => pcrExtend('x', Buffer.alloc(32))).toThrow(RangeError)
  })

  it('splits ramdisks between PCR1 (first) and PCR2 (the rest); PCR0 covers all', () => {
    const H = (b: Buffer) => createHash('sha384').update(b).digest()
    const k = Buffer.from('k')
    const c = Buffer.from('c')
    const r = [Buffer.from('r0'), Buffer.from('r1'), Buffer.from('r2')]
    const pcrs = computePcrs({ kernel: k, cmdline: c, ramdisks: r })
    expect(pcrs.PCR0).toBe(pcrExtend(H(Buffer.concat([k, c, ...r]))).toString('hex'))
    expect(pcrs.PCR1).toBe(pcrExtend(H(Buffer.concat([k, c, r[0]!]))).toString('hex'))
    expect(pcrs.PCR2).toBe(pcrExtend(H(Buffer.concat([r[1]!, r[2]!]))).toString('hex'))
    expect(pcrs.PCR8).toBeUndefined()
    // One ramdisk: PCR2 is the extend of the empty hash, as nitro-cli's empty hasher gives.
    expect(computePcrs({ kernel: k, cmdline: c, ramdisks: [r[0]!] }).PCR2).toBe(
      pcrExtend(H(Buffer.alloc(0))).toString('hex'),
    )
  })
})
