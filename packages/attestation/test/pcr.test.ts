import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  extendPcr,
  InvalidOptionError,
  parseAttestationDocument,
  pcr3FromRoleArn,
  pcr4FromInstanceId,
  pcr8FromCertificate,
  pcrFromMeasurement,
  toHex,
} from '../src/index.js'
import { fixture, VECTORS } from './vectors.js'

describe('PCR helpers (known answers from the AWS user guide and real documents)', () => {
  it('PCR3 from an IAM role ARN', () => {
    expect(toHex(pcr3FromRoleArn('arn:aws:iam::123456789012:role/Webserver'))).toBe(
      '78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef4fc1f1a452e315b9e98f9e312e6921e6',
    )
  })

  it('PCR4 from an instance id', () => {
    expect(toHex(pcr4FromInstanceId('i-1234567890abcdef0'))).toBe(
      '08f996b5d43e047a9eb51e7f548bfee7e164fd7dc8f65541f2ac09d6545ac812719327281c401a67a10fcba87ae79ce0',
    )
    expect(toHex(pcr4FromInstanceId('i-0ffff615a409a72d7'))).toBe(
      '6386cee86c94b2a713c98e1d883134e8f2c019a17a712eb950fde15e9d6667575569c4e5c5e66eb9c920369961025fd2',
    )
  })

  it('PCR4 of every real document is the instance id of its module_id', () => {
    for (const v of VECTORS) {
      const doc = parseAttestationDocument(v.bytes).document
      const instanceId = doc.moduleId.split('-enc')[0]!
      expect(toHex(doc.pcrs.get(4)!)).toBe(toHex(pcr4FromInstanceId(instanceId)))
    }
  })

  it('PCR8 from the EIF signing certificate (DER or PEM) matches the nostrband document', () => {
    const der = fixture('nostrband/nostrband_eif_signing_cert.der')
    const expected =
      '7e3f4c20f65f0a62de884a41ef73fd693c136173fec4ad19336d2ce3b1d63246da3383cbb83cd10dad77d5d1aafcdce1'
    expect(toHex(pcr8FromCertificate(der))).toBe(expected)
    const pem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64')}\n-----END CERTIFICATE-----\n`
    expect(toHex(pcr8FromCertificate(pem))).toBe(expected)
    const nostr = VECTORS.find((v) => v.name.startsWith('nostrband'))!
    expect(toHex(parseAttestationDocument(nostr.bytes).document.pcrs.get(8)!)).toBe(expected)
  })

  it('extend is SHA384(pcr ‖ data) and chains', () => {
    const zero = new Uint8Array(48)
    const once = extendPcr(zero, 'a')
    expect(toHex(once)).toBe(createHash('sha384').update(zero).update('a').digest('hex'))
    expect(toHex(pcrFromMeasurement('a'))).toBe(toHex(once))
    const twice = extendPcr(once, new Uint8Array([1, 2]))
    expect(toHex(twice)).toBe(
      createHash('sha384')
        .update(once)
        .update(new Uint8Array([1, 2]))
        .digest('hex'),
    )
  })

  it('rejects bad input with typed errors', () => {
    expect(() => extendPcr(new Uint8Array(32), 'x')).toThrow(InvalidOptionError)
    expect(() => pcr3FromRoleArn('Webserver')).toThrow(/ARN/)
    expect(() => pcr4FromInstanceId('instance-1')).toThrow(/instance id/)
    expect(() => pcr8FromCertificate('no pem here')).toThrow(InvalidOptionError)
  })
})
