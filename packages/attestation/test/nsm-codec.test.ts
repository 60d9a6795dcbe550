import { describe, expect, it } from 'vitest'
import {
  decodeNsmRequest,
  decodeNsmResponse,
  encodeNsmRequest,
  encodeNsmResponse,
  MalformedError,
  NSM_ERROR_NAMES,
  type NsmRequest,
  type NsmResponse,
  toHex,
} from '../src/index.js'

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const text = (s: string) => Buffer.from(s).toString('hex')

// Byte vectors written from RFC 8949 and the serde externally-tagged rules of nsm-api.
const requests: [string, NsmRequest, string][] = [
  ['DescribeNSM (unit variant: bare text)', { type: 'DescribeNSM' }, `6b${text('DescribeNSM')}`],
  ['GetRandom', { type: 'GetRandom' }, `69${text('GetRandom')}`],
  ['DescribePCR', { type: 'DescribePCR', index: 3 }, `a1 6b${text('DescribePCR')} a1 65${text('index')} 03`],
  [
    'ExtendPCR',
    { type: 'ExtendPCR', index: 16, data: hex('0102') },
    `a1 69${text('ExtendPCR')} a2 65${text('index')} 10 64${text('data')} 42 0102`,
  ],
  ['LockPCR', { type: 'LockPCR', index: 16 }, `a1 67${text('LockPCR')} a1 65${text('index')} 10`],
  ['LockPCRs', { type: 'LockPCRs', range: 32 }, `a1 68${text('LockPCRs')} a1 65${text('range')} 1820`],
  [
    'Attestation (absent fields are null, still present)',
    { type: 'Attestation', userData: null, nonce: hex('aa'), publicKey: null },
    `a1 6b${text('Attestation')} a3 69${text('user_data')} f6 65${text('nonce')} 41aa 6a${text('public_key')} f6`,
  ],
]

const responses: [string, NsmResponse, string][] = [
  ['Error', { type: 'Error', error: 'InvalidIndex' }, `a1 65${text('Error')} 6c${text('InvalidIndex')}`],
  ['LockPCR (unit)', { type: 'LockPCR' }, `67${text('LockPCR')}`],
  ['LockPCRs (unit)', { type: 'LockPCRs' }, `68${text('LockPCRs')}`],
  [
    'DescribePCR',
    { type: 'DescribePCR', lock: true, data: new Uint8Array(48) },
    `a1 6b${text('DescribePCR')} a2 64${text('lock')} f5 64${text('data')} 5830 ${'00'.repeat(48)}`,
  ],
  [
    'ExtendPCR',
    { type: 'ExtendPCR', data: hex('ff'.repeat(48)) },
    `a1 69${text('ExtendPCR')} a1 64${text('data')} 5830 ${'ff'.repeat(48)}`,
  ],
  [
    'Attestation',
    { type: 'Attestation', document: hex('8444') },
    `a1 6b${text('Attestation')} a1 68${text('document')} 42 8444`,
  ],
  [
    'GetRandom',
    { type: 'GetRandom', random: hex('0a0b') },
    `a1 69${text('GetRandom')} a1 66${text('random')} 42 0a0b`,
  ],
  [
    'DescribeNSM',
    {
      type: 'DescribeNSM',
      versionMajor: 1,
      versionMinor: 0,
      versionPatch: 2,
      moduleId: 'i-0',
      maxPcrs: 32,
      lockedPcrs: [0, 1, 2],
      digest: 'SHA384',
    },
    `a1 6b${text('DescribeNSM')} a7 6d${text('version_major')} 01 6d${text('version_minor')} 00 6d${text('version_patch')} 02` +
      ` 69${text('module_id')} 63${text('i-0')} 68${text('max_pcrs')} 1820 6b${text('locked_pcrs')} 83 000102` +
      ` 66${text('digest')} 66${text('SHA384')}`,
  ],
]

describe('NSM request codec', () => {
  it.each(requests)('%s encodes to the byte vector and decodes back', (_name, request, expected) => {
    expect(toHex(encodeNsmRequest(request))).toBe(expected.replace(/\s+/g, ''))
    expect(decodeNsmRequest(hex(expected))).toEqual(request)
  })
})

describe('NSM response codec', () => {
  it.each(responses)('%s encodes to the byte vector and decodes back', (_name, response, expected) => {
    expect(toHex(encodeNsmResponse(response))).toBe(expected.replace(/\s+/g, ''))
    expect(decodeNsmResponse(hex(expected))).toEqual(response)
  })

  it('decodes every device error name, and keeps an unknown one as text', () => {
    for (const name of [...NSM_ERROR_NAMES, 'Future']) {
      expect(decodeNsmResponse(encodeNsmResponse({ type: 'Error', error: name }))).toEqual({
        type: 'Error',
        error: name,
      })
    }
  })

  it('rejects malformed messages with MalformedError', () => {
    const bad = [
      '',
      'f6',
      `a1 6b${text('DescribePCR')} a1 65${text('index')} 1a00010000`, // index beyond u16
      `a1 6b${text('DescribePCR')} a2 64${text('lock')} 01 64${text('data')} 40`, // lock not bool
      `a2 65${text('Error')} 00 65${text('Other')} 00`, // two variants
      `6a${text('Unexpected')}`,
      `a1 65${text('Error')} 01`,
      `a1 67${text('LockPCR')} a0`, // unit variant with a body
    ]
    for (const h of bad) expect(() => decodeNsmResponse(hex(h)), h).toThrow(MalformedError)
    expect(() => decodeNsmRequest(hex(`a1 69${text('ExtendPCR')} a1 65${text('index')} 10`))).toThrow(/data/)
  })
})
