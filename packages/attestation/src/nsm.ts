/**
 * The NSM client: typed calls over any transport that carries the CBOR messages, so the real
 * device (/dev/nsm through the native addon) and the dev NSM share one code path.
 */

import {
  MalformedError,
  NsmInputTooLargeError,
  NsmInvalidResponseError,
  NsmUnavailableError,
  nsmErrorFromName,
} from './errors.js'
import {
  decodeNsmResponse,
  encodeNsmRequest,
  NSM_REQUEST_MAX_SIZE,
  type NsmDescription,
  type NsmRequest,
  type NsmResponse,
} from './nsm-codec.js'

/** Carries one encoded request to an NSM and brings back its encoded response. */
export interface NsmTransport {
  call(request: Uint8Array): Promise<Uint8Array>
  close(): Promise<void>
}

export interface AttestationRequest {
  /** Up to 1024 bytes each; absent → null in the request. */
  readonly userData?: Uint8Array | null
  readonly nonce?: Uint8Array | null
  readonly publicKey?: Uint8Array | null
}

export interface Nsm {
  describeNsm(): Promise<NsmDescription>
  describePcr(index: number): Promise<{ readonly locked: boolean; readonly value: Uint8Array }>
  /** Extends an unlocked PCR (16-31 on Nitro); returns its new value. */
  extendPcr(index: number, data: Uint8Array): Promise<Uint8Array>
  lockPcr(index: number): Promise<void>
  /** Locks PCRs [0, range). */
  lockPcrs(range: number): Promise<void>
  /** A signed attestation document (COSE_Sign1 bytes). */
  getAttestationDocument(request?: AttestationRequest): Promise<Uint8Array>
  /** 256 random bytes from the NSM. */
  getRandom(): Promise<Uint8Array>
  close(): Promise<void>
}

type Of<T extends NsmResponse['type']> = Extract<NsmResponse, { type: T }>

export function createNsmClient(transport: NsmTransport): Nsm {
  let state: 'open' | 'closed' = 'open'

  async function call<T extends NsmResponse['type']>(request: NsmRequest, expect: T): Promise<Of<T>> {
    if (state === 'closed') throw new NsmUnavailableError('the NSM client is closed')
    const encoded = encodeNsmRequest(request)
    if (encoded.length > NSM_REQUEST_MAX_SIZE) {
      throw new NsmInputTooLargeError(
        `NSM: ${request.type} request is ${encoded.length} bytes; the limit is ${NSM_REQUEST_MAX_SIZE}`,
      )
    }
    const raw = await transport.call(encoded)
    let response: NsmResponse
    try {
      response = decodeNsmResponse(raw)
    } catch (err) {
      if (!(err instanceof MalformedError)) throw err
      throw new NsmInvalidResponseError(`NSM: undecodable response to ${request.type}: ${err.message}`, {
        cause: err,
      })
    }
    if (response.type === 'Error') throw nsmErrorFromName(response.error, request.type)
    if (response.type !== expect) {
      throw new NsmInvalidResponseError(`NSM: ${request.type} was answered with ${response.type}`)
    }
    return response as Of<T>
  }

  return {
    async describeNsm() {
      const { type: _type, ...description } = await call({ type: 'DescribeNSM' }, 'DescribeNSM')
      return description
    },
    async describePcr(index) {
      const r = await call({ type: 'DescribePCR', index }, 'DescribePCR')
      return { locked: r.lock, value: r.data }
    },
    async extendPcr(index, data) {
      return (await call({ type: 'ExtendPCR', index, data }, 'ExtendPCR')).data
    },
    async lockPcr(index) {
      await call({ type: 'LockPCR', index }, 'LockPCR')
    },
    async lockPcrs(range) {
      await call({ type: 'LockPCRs', range }, 'LockPCRs')
    },
    async getAttestationDocument(request = {}) {
      const r = await call(
        {
          type: 'Attestation',
          userData: request.userData ?? null,
          nonce: request.nonce ?? null,
          publicKey: request.publicKey ?? null,
        },
        'Attestation',
      )
      return r.document
    },
    async getRandom() {
      return (await call({ type: 'GetRandom' }, 'GetRandom')).random
    },
    async close() {
      if (state === 'closed') return
      state = 'closed'
      await transport.close()
    },
  }
}
