/**
 * A Nitro Secure Module in software for dev mode and tests. It answers the same CBOR messages as
 * the device, and signs documents in exactly the real format (untagged COSE_Sign1, ES384,
 * module_id, digest, 8-byte timestamp, locked PCRs, certificate, cabundle, public_key, user_data,
 * nonce) with a persisted local CA. A verifier that pins its root verifies its documents through
 * the same code path as real ones. Nothing it signs is trustworthy outside development.
 */

import { randomBytes } from 'node:crypto'
import { derToPem, fromHex } from './bytes.js'
import { signCoseSign1 } from './cose.js'
import { type DevCa, defaultDevNsmDir, openDevCa } from './dev-ca.js'
import { encodeAttestationPayload } from './document-encode.js'
import { InvalidOptionError, MalformedError, type NsmErrorName } from './errors.js'
import { createNsmClient, type Nsm, type NsmTransport } from './nsm.js'
import {
  decodeNsmRequest,
  encodeNsmResponse,
  NSM_ATTESTATION_FIELD_MAX,
  NSM_REQUEST_MAX_SIZE,
  type NsmRequest,
  type NsmResponse,
} from './nsm-codec.js'
import { extendPcr, pcr4FromInstanceId } from './pcr.js'

export interface DevNsmOptions {
  /** Folder of the persisted CA. @default $XDG_CONFIG_HOME/enclave/dev-nsm (~/.config/enclave/dev-nsm) */
  dir?: string
  /** Initial PCR values by index (hex or 48 bytes), e.g. an EIF's measurements. @default zero, PCR4 from module_id */
  pcrs?: Readonly<Record<number, string | Uint8Array>>
  /**
   * PCRs from an EIF's measurements as nitro-cli's describe-eif / build-enclave print them
   * (`{"HashAlgorithm": "Sha384 { ... }", "PCR0": "…", "PCR1": "…", "PCR2": "…", "PCR8": "…"}`);
   * `pcrs` entries win over these.
   */
  measurements?: Readonly<Record<string, string>>
  /** `i-<17 hex>-enc<16 hex>`. @default random */
  moduleId?: string
  /** Clock for timestamps and certificate dates, ms since the epoch. @default Date.now */
  now?: () => number
}

export interface DevNsm extends Nsm {
  /** The raw message handler: the same transport interface the device uses. */
  readonly transport: NsmTransport
  readonly moduleId: string
  /** Root certificate to pin in a verifier (PEM). */
  readonly rootCertificatePem: string
  readonly dir: string
  /** Dev only: overwrite a PCR whatever its lock (simulates booting another image). */
  setPcr(index: number, value: string | Uint8Array): void
}

const MAX_PCRS = 32
const BOOT_LOCKED = 16
const MODULE_ID = /^i-[0-9a-f]{17}-enc[0-9a-f]{16}$/

function pcrValue(index: number, value: string | Uint8Array): Uint8Array {
  const bytes = typeof value === 'string' ? fromHex(value) : value
  if (!(bytes instanceof Uint8Array) || bytes.length !== 48) {
    throw new InvalidOptionError(`pcrs: PCR${index} must be 48 bytes (96 hex digits)`)
  }
  return new Uint8Array(bytes)
}

class DeviceError extends Error {
  constructor(readonly nsmError: NsmErrorName) {
    super(nsmError)
  }
}

/** Opens (creating on first use) the dev CA and returns a dev NSM with PCRs 0-15 locked. */
export async function createDevNsm(options: DevNsmOptions = {}): Promise<DevNsm> {
  const now = options.now ?? Date.now
  if (typeof now !== 'function')
    throw new InvalidOptionError('now must be a function returning ms since the epoch')
  const moduleId =
    options.moduleId ??
    `i-${randomBytes(9).toString('hex').slice(0, 17)}-enc${randomBytes(8).toString('hex')}`
  if (!MODULE_ID.test(moduleId))
    throw new InvalidOptionError(`moduleId must look like i-<17 hex>-enc<16 hex>, got ${moduleId}`)
  const dir = options.dir ?? defaultDevNsmDir()
  if (typeof dir !== 'string' || dir.length === 0) throw new InvalidOptionError('dir must be a folder path')

  const pcrs: Uint8Array[] = Array.from({ length: MAX_PCRS }, () => new Uint8Array(48))
  pcrs[4] = pcr4FromInstanceId(moduleId.split('-enc')[0]!)
  for (const [key, value] of Object.entries(options.measurements ?? {})) {
    const match = /^PCR(\d{1,2})$/.exec(key)
    if (!match) continue // HashAlgorithm and other fields
    const index = Number(match[1])
    if (index >= MAX_PCRS) throw new InvalidOptionError(`measurements: ${key} is beyond PCR31`)
    pcrs[index] = pcrValue(index, value)
  }
  for (const [key, value] of Object.entries(options.pcrs ?? {})) {
    const index = Number(key)
    if (!Number.isInteger(index) || index < 0 || index >= MAX_PCRS)
      throw new InvalidOptionError(`pcrs: index ${key} is not in 0..31`)
    pcrs[index] = pcrValue(index, value)
  }
  const locked = new Set<number>(Array.from({ length: BOOT_LOCKED }, (_, i) => i))
  const ca: DevCa = await openDevCa(dir, now())

  function checkIndex(index: number): void {
    if (index >= MAX_PCRS) throw new DeviceError('InvalidIndex')
  }

  async function attest(request: Extract<NsmRequest, { type: 'Attestation' }>): Promise<Uint8Array> {
    for (const field of [request.userData, request.nonce, request.publicKey]) {
      if (field && field.length > NSM_ATTESTATION_FIELD_MAX) throw new DeviceError('InvalidArgument')
    }
    const timestamp = now()
    const leaf = await ca.leafAt(timestamp)
    const payload = encodeAttestationPayload({
      moduleId,
      timestamp,
      pcrs: new Map([...locked].sort((a, b) => a - b).map((i) => [i, pcrs[i]!])),
      certificate: leaf.der,
      cabundle: [ca.root.der, ca.intermediate.der],
      publicKey: request.publicKey,
      userData: request.userData,
      nonce: request.nonce,
    })
    return signCoseSign1(payload, leaf.key, { algorithm: 'ES384' })
  }

  async function handle(request: NsmRequest): Promise<NsmResponse> {
    switch (request.type) {
      case 'DescribeNSM':
        return {
          type: 'DescribeNSM',
          versionMajor: 1,
          versionMinor: 0,
          versionPatch: 0,
          moduleId,
          maxPcrs: MAX_PCRS,
          lockedPcrs: [...locked].sort((a, b) => a - b),
          digest: 'SHA384',
        }
      case 'DescribePCR':
        checkIndex(request.index)
        return {
          type: 'DescribePCR',
          lock: locked.has(request.index),
          data: new Uint8Array(pcrs[request.index]!),
        }
      case 'ExtendPCR':
        checkIndex(request.index)
        if (locked.has(request.index)) throw new DeviceError('ReadOnlyIndex')
        pcrs[request.index] = extendPcr(pcrs[request.index]!, request.data)
        return { type: 'ExtendPCR', data: new Uint8Array(pcrs[request.index]!) }
      case 'LockPCR':
        checkIndex(request.index)
        if (locked.has(request.index)) throw new DeviceError('ReadOnlyIndex')
        locked.add(request.index)
        return { type: 'LockPCR' }
      case 'LockPCRs':
        if (request.range > MAX_PCRS) throw new DeviceError('InvalidIndex')
        for (let i = 0; i < request.range; i++) locked.add(i)
        return { type: 'LockPCRs' }
      case 'Attestation':
        return { type: 'Attestation', document: await attest(request) }
      case 'GetRandom':
        return { type: 'GetRandom', random: new Uint8Array(randomBytes(256)) }
    }
  }

  let state: 'open' | 'closed' = 'open'
  const transport: NsmTransport = {
    async call(raw) {
      if (state === 'closed') return encodeNsmResponse({ type: 'Error', error: 'InternalError' })
      if (raw.length > NSM_REQUEST_MAX_SIZE)
        return encodeNsmResponse({ type: 'Error', error: 'InputTooLarge' })
      try {
        return encodeNsmResponse(await handle(decodeNsmRequest(raw)))
      } catch (err) {
        if (err instanceof DeviceError) return encodeNsmResponse({ type: 'Error', error: err.nsmError })
        if (err instanceof MalformedError)
          return encodeNsmResponse({ type: 'Error', error: 'InvalidArgument' })
        throw err
      }
    },
    async close() {
      state = 'closed'
    },
  }

  const client = createNsmClient(transport)
  return {
    ...client,
    transport,
    moduleId,
    dir,
    rootCertificatePem: derToPem(ca.root.der),
    setPcr(index, value) {
      if (!Number.isInteger(index) || index < 0 || index >= MAX_PCRS)
        throw new InvalidOptionError(`setPcr: index ${index} is not in 0..31`)
      pcrs[index] = pcrValue(index, value)
    },
  }
}
