/**
 * The enclave's KMS recipient: an RSA-2048 key pair made inside the enclave, whose public half is
 * bound into an NSM attestation document, and whose private half opens CiphertextForRecipient.
 * The private key never leaves this object.
 */

import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { openCiphertextForRecipient } from './cms.js'
import { AttestationFailedError, InvalidOptionError } from './errors.js'

/** What the recipient needs from an NSM (the real device or @enclave/attestation's dev NSM). */
export interface RecipientNsm {
  getAttestationDocument(request: { publicKey?: Uint8Array | null }): Promise<Uint8Array>
}

/** The value KMS expects in the `Recipient` request field. */
export interface RecipientField {
  readonly AttestationDocument: Uint8Array
  readonly KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256'
}

export interface Recipient {
  /** SubjectPublicKeyInfo DER of the RSA-2048 key, as it appears in the document's public_key. */
  readonly publicKeyDer: Uint8Array
  /** A fresh attestation document binding publicKeyDer (no nonce, no user_data, as sdk-c and enclaver do). */
  field(): Promise<RecipientField>
  /** Decrypts a CiphertextForRecipient addressed to this key. */
  open(ciphertextForRecipient: Uint8Array): Uint8Array
}

export interface RecipientOptions {
  /** NSM that signs the attestation documents. */
  nsm: RecipientNsm
  /** An existing RSA private key (≥ 2048 bits). @default a new RSA-2048 key */
  privateKey?: KeyObject
}

export function createRecipient(options: RecipientOptions): Recipient {
  const nsm = options?.nsm
  if (!nsm || typeof nsm.getAttestationDocument !== 'function') {
    throw new InvalidOptionError(
      'nsm must be an NSM client (getAttestationDocument), e.g. from @enclave/attestation',
    )
  }
  let privateKey = options.privateKey
  if (privateKey === undefined) {
    privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  } else if (
    privateKey.type !== 'private' ||
    privateKey.asymmetricKeyType !== 'rsa' ||
    (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) < 2048
  ) {
    throw new InvalidOptionError('privateKey must be an RSA private KeyObject of at least 2048 bits')
  }
  const key = privateKey
  const publicKeyDer = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }))
  return {
    publicKeyDer,
    async field() {
      let document: Uint8Array
      try {
        document = await nsm.getAttestationDocument({ publicKey: publicKeyDer })
      } catch (err) {
        throw new AttestationFailedError(
          `the NSM refused the attestation document: ${(err as Error).message}`,
          {
            cause: err,
          },
        )
      }
      return { AttestationDocument: document, KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }
    },
    open(ciphertextForRecipient) {
      return openCiphertextForRecipient(ciphertextForRecipient, key)
    },
  }
}
