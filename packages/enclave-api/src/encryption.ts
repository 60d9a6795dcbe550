/**
 * The encryption scheme of the Sparsity enclaver fork (`docs/encryption.md`, since c249abb):
 * ECDH P-384 → HKDF-SHA256 (salt = the two 97-byte uncompressed public keys sorted
 * lexicographically and concatenated, then the nonce; info `enclaver-ecdh-aes256gcm-v1`; 32 bytes)
 * → AES-256-GCM with the same 12-byte nonce, no AAD, the 16-byte tag appended to the ciphertext.
 */

import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
} from 'node:crypto'
import { BadRequestError, DecryptFailedError } from './errors.js'

export const ENCRYPTION_INFO = 'enclaver-ecdh-aes256gcm-v1'
export const NONCE_LENGTH = 12
const TAG_LENGTH = 16
const POINT_LENGTH = 97

/** The 97-byte uncompressed point (0x04 ‖ X ‖ Y) of a P-384 key. */
export function uncompressedPoint(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' })
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])
}

/** A P-384 public key from SPKI DER or a 97-byte uncompressed point. */
export function importP384PublicKey(data: Uint8Array, field: string): KeyObject {
  let key: KeyObject
  try {
    if (data.length === POINT_LENGTH && data[0] === 4) {
      key = createPublicKey({
        key: {
          kty: 'EC',
          crv: 'P-384',
          x: Buffer.from(data.subarray(1, 49)).toString('base64url'),
          y: Buffer.from(data.subarray(49)).toString('base64url'),
        },
        format: 'jwk',
      })
    } else {
      key = createPublicKey({ key: Buffer.from(data), format: 'der', type: 'spki' })
    }
  } catch (err) {
    throw new BadRequestError(
      `${field} is not a P-384 public key (SPKI DER or 97-byte uncompressed point, hex)`,
      {
        cause: err,
      },
    )
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'secp384r1') {
    throw new BadRequestError(`${field} must be a P-384 (secp384r1) key`)
  }
  return key
}

function deriveKey(privateKey: KeyObject, ownPublic: KeyObject, peer: KeyObject, nonce: Uint8Array): Buffer {
  const shared = diffieHellman({ privateKey, publicKey: peer })
  const points = [uncompressedPoint(ownPublic), uncompressedPoint(peer)].sort(Buffer.compare)
  const salt = Buffer.concat([...points, nonce])
  return Buffer.from(hkdfSync('sha256', shared, salt, ENCRYPTION_INFO, 32))
}

export function encryptMessage(
  privateKey: KeyObject,
  ownPublic: KeyObject,
  peer: KeyObject,
  nonce: Uint8Array,
  plaintext: Uint8Array,
): Buffer {
  const key = deriveKey(privateKey, ownPublic, peer, nonce)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  const out = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  key.fill(0)
  return out
}

export function decryptMessage(
  privateKey: KeyObject,
  ownPublic: KeyObject,
  peer: KeyObject,
  nonce: Uint8Array,
  data: Uint8Array,
): Buffer {
  if (data.length < TAG_LENGTH) {
    throw new BadRequestError(`encrypted_data is ${data.length} bytes; it must hold at least the 16-byte tag`)
  }
  const key = deriveKey(privateKey, ownPublic, peer, nonce)
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce)
    decipher.setAuthTag(data.subarray(data.length - TAG_LENGTH))
    return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_LENGTH)), decipher.final()])
  } catch (err) {
    throw new DecryptFailedError('AES-256-GCM authentication failed (wrong key or nonce, or damaged data)', {
      cause: err,
    })
  } finally {
    key.fill(0)
  }
}

/** Remembers the last `capacity` (client key, nonce) digests, FIFO, so memory stays bounded. */
export class ReplayCache {
  readonly #capacity: number
  readonly #seen = new Set<string>()
  constructor(capacity: number) {
    this.#capacity = capacity
  }
  /** Records the entry; false if it was already there. */
  add(entry: string): boolean {
    if (this.#seen.has(entry)) return false
    this.#seen.add(entry)
    if (this.#seen.size > this.#capacity) this.#seen.delete(this.#seen.values().next().value as string)
    return true
  }
}
