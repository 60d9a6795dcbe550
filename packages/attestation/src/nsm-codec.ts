/**
 * The NSM's CBOR messages (aws-nitro-enclaves-nsm-api src/api/mod.rs, serde externally tagged):
 * unit variants are a bare text string, struct variants {Name: {fields}}, absent options null.
 * Both directions are here: clients encode requests and decode responses, the dev NSM the reverse.
 */

import { decodeCbor, encodeCbor } from './cbor.js'
import { MalformedError, NSM_ERROR_NAMES, type NsmErrorName } from './errors.js'

/** Request: at most 4096 bytes encoded (NSM_REQUEST_MAX_SIZE). */
export const NSM_REQUEST_MAX_SIZE = 0x1000
/** Response: at most 12288 bytes (NSM_RESPONSE_MAX_SIZE). */
export const NSM_RESPONSE_MAX_SIZE = 0x3000
/** user_data, nonce and public_key: at most 1024 bytes each. */
export const NSM_ATTESTATION_FIELD_MAX = 1024

export type NsmDigest = 'SHA256' | 'SHA384' | 'SHA512'

export type NsmRequest =
  | { readonly type: 'DescribeNSM' }
  | { readonly type: 'DescribePCR'; readonly index: number }
  | { readonly type: 'ExtendPCR'; readonly index: number; readonly data: Uint8Array }
  | { readonly type: 'LockPCR'; readonly index: number }
  | { readonly type: 'LockPCRs'; readonly range: number }
  | {
      readonly type: 'Attestation'
      readonly userData: Uint8Array | null
      readonly nonce: Uint8Array | null
      readonly publicKey: Uint8Array | null
    }
  | { readonly type: 'GetRandom' }

export interface NsmDescription {
  readonly versionMajor: number
  readonly versionMinor: number
  readonly versionPatch: number
  readonly moduleId: string
  readonly maxPcrs: number
  readonly lockedPcrs: readonly number[]
  readonly digest: NsmDigest
}

export type NsmResponse =
  | ({ readonly type: 'DescribeNSM' } & NsmDescription)
  | { readonly type: 'DescribePCR'; readonly lock: boolean; readonly data: Uint8Array }
  | { readonly type: 'ExtendPCR'; readonly data: Uint8Array }
  | { readonly type: 'LockPCR' }
  | { readonly type: 'LockPCRs' }
  | { readonly type: 'Attestation'; readonly document: Uint8Array }
  | { readonly type: 'GetRandom'; readonly random: Uint8Array }
  | { readonly type: 'Error'; readonly error: NsmErrorName | string }

const m = (entries: [string, unknown][]) => new Map(entries)

export function encodeNsmRequest(request: NsmRequest): Uint8Array {
  switch (request.type) {
    case 'DescribeNSM':
    case 'GetRandom':
      return encodeCbor(request.type)
    case 'DescribePCR':
    case 'LockPCR':
      return encodeCbor(m([[request.type, m([['index', request.index]])]]))
    case 'ExtendPCR':
      return encodeCbor(
        m([
          [
            'ExtendPCR',
            m([
              ['index', request.index],
              ['data', request.data],
            ]),
          ],
        ]),
      )
    case 'LockPCRs':
      return encodeCbor(m([['LockPCRs', m([['range', request.range]])]]))
    case 'Attestation':
      return encodeCbor(
        m([
          [
            'Attestation',
            m([
              ['user_data', request.userData],
              ['nonce', request.nonce],
              ['public_key', request.publicKey],
            ]),
          ],
        ]),
      )
  }
}

export function encodeNsmResponse(response: NsmResponse): Uint8Array {
  switch (response.type) {
    case 'LockPCR':
    case 'LockPCRs':
      return encodeCbor(response.type)
    case 'DescribeNSM':
      return encodeCbor(
        m([
          [
            'DescribeNSM',
            m([
              ['version_major', response.versionMajor],
              ['version_minor', response.versionMinor],
              ['version_patch', response.versionPatch],
              ['module_id', response.moduleId],
              ['max_pcrs', response.maxPcrs],
              ['locked_pcrs', [...response.lockedPcrs]],
              ['digest', response.digest],
            ]),
          ],
        ]),
      )
    case 'DescribePCR':
      return encodeCbor(
        m([
          [
            'DescribePCR',
            m([
              ['lock', response.lock],
              ['data', response.data],
            ]),
          ],
        ]),
      )
    case 'ExtendPCR':
      return encodeCbor(m([['ExtendPCR', m([['data', response.data]])]]))
    case 'Attestation':
      return encodeCbor(m([['Attestation', m([['document', response.document]])]]))
    case 'GetRandom':
      return encodeCbor(m([['GetRandom', m([['random', response.random]])]]))
    case 'Error':
      return encodeCbor(m([['Error', response.error]]))
  }
}

/** Splits an externally tagged enum value into its variant name and body. */
function variant(bytes: Uint8Array, what: string): [string, unknown] {
  const value = decodeCbor(bytes, what)
  if (typeof value === 'string') return [value, undefined]
  if (value instanceof Map && value.size === 1) {
    const [name, body] = value.entries().next().value as [unknown, unknown]
    if (typeof name === 'string') return [name, body]
  }
  throw new MalformedError(`${what}: expected a text variant or a one-entry map {Variant: fields}`)
}

function fields(body: unknown, what: string): Map<unknown, unknown> {
  if (!(body instanceof Map)) throw new MalformedError(`${what}: variant fields must be a map`)
  return body
}

function u16(map: Map<unknown, unknown>, key: string, what: string): number {
  const v = map.get(key)
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) {
    throw new MalformedError(`${what}: ${key} must be an unsigned 16-bit integer`)
  }
  return v
}

function bstr(map: Map<unknown, unknown>, key: string, what: string): Uint8Array {
  const v = map.get(key)
  if (!(v instanceof Uint8Array)) throw new MalformedError(`${what}: ${key} must be a byte string`)
  return v
}

function optionalBstr(map: Map<unknown, unknown>, key: string, what: string): Uint8Array | null {
  const v = map.get(key)
  if (v === null || v === undefined) return null
  if (!(v instanceof Uint8Array)) throw new MalformedError(`${what}: ${key} must be a byte string or null`)
  return v
}

function noBody(name: string, body: unknown, what: string): void {
  if (body !== undefined) throw new MalformedError(`${what}: ${name} is a unit variant (a bare text string)`)
}

export function decodeNsmRequest(bytes: Uint8Array): NsmRequest {
  const what = 'NSM request'
  const [name, body] = variant(bytes, what)
  switch (name) {
    case 'DescribeNSM':
    case 'GetRandom':
      noBody(name, body, what)
      return { type: name }
    case 'DescribePCR':
    case 'LockPCR':
      return { type: name, index: u16(fields(body, what), 'index', what) }
    case 'ExtendPCR': {
      const f = fields(body, what)
      return { type: name, index: u16(f, 'index', what), data: bstr(f, 'data', what) }
    }
    case 'LockPCRs':
      return { type: name, range: u16(fields(body, what), 'range', what) }
    case 'Attestation': {
      const f = fields(body, what)
      return {
        type: name,
        userData: optionalBstr(f, 'user_data', what),
        nonce: optionalBstr(f, 'nonce', what),
        publicKey: optionalBstr(f, 'public_key', what),
      }
    }
    default:
      throw new MalformedError(`${what}: unknown request ${JSON.stringify(name)}`)
  }
}

export function decodeNsmResponse(bytes: Uint8Array): NsmResponse {
  const what = 'NSM response'
  const [name, body] = variant(bytes, what)
  switch (name) {
    case 'LockPCR':
    case 'LockPCRs':
      noBody(name, body, what)
      return { type: name }
    case 'Error': {
      if (typeof body !== 'string') throw new MalformedError(`${what}: Error must carry an error-code name`)
      return {
        type: 'Error',
        error: (NSM_ERROR_NAMES as readonly string[]).includes(body) ? (body as NsmErrorName) : body,
      }
    }
    case 'DescribeNSM': {
      const f = fields(body, what)
      const locked = f.get('locked_pcrs')
      if (
        !Array.isArray(locked) ||
        !locked.every((i) => typeof i === 'number' && Number.isInteger(i) && i >= 0 && i <= 0xffff)
      ) {
        throw new MalformedError(`${what}: locked_pcrs must be an array of unsigned integers`)
      }
      const moduleId = f.get('module_id')
      if (typeof moduleId !== 'string') throw new MalformedError(`${what}: module_id must be text`)
      const digest = f.get('digest')
      if (digest !== 'SHA256' && digest !== 'SHA384' && digest !== 'SHA512') {
        throw new MalformedError(`${what}: digest must be SHA256, SHA384 or SHA512`)
      }
      return {
        type: 'DescribeNSM',
        versionMajor: u16(f, 'version_major', what),
        versionMinor: u16(f, 'version_minor', what),
        versionPatch: u16(f, 'version_patch', what),
        moduleId,
        maxPcrs: u16(f, 'max_pcrs', what),
        lockedPcrs: locked as number[],
        digest,
      }
    }
    case 'DescribePCR': {
      const f = fields(body, what)
      const lock = f.get('lock')
      if (typeof lock !== 'boolean') throw new MalformedError(`${what}: lock must be a boolean`)
      return { type: name, lock, data: bstr(f, 'data', what) }
    }
    case 'ExtendPCR':
      return { type: name, data: bstr(fields(body, what), 'data', what) }
    case 'Attestation':
      return { type: name, document: bstr(fields(body, what), 'document', what) }
    case 'GetRandom':
      return { type: name, random: bstr(fields(body, what), 'random', what) }
    default:
      throw new MalformedError(`${what}: unknown response ${JSON.stringify(name)}`)
  }
}
