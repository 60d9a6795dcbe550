/**
 * @enclave/kms: AWS KMS from inside a Nitro Enclave, with attestation.
 *
 * ```ts
 * import { KMSClient, DecryptCommand } from '@aws-sdk/client-kms'
 * import { openNsm } from '@enclave/attestation'
 * import { attachRecipient, createRecipient } from '@enclave/kms'
 * const kms = new KMSClient({ region: 'us-east-1' })
 * attachRecipient(kms, createRecipient({ nsm: await openNsm() }))
 * const { Plaintext } = await kms.send(new DecryptCommand({ CiphertextBlob })) // via CiphertextForRecipient
 * ```
 */

export type { Logger } from '@enclave/logger'
export { ATTESTING_ACTIONS, type AttestingAction } from './actions.js'
export {
  CMS_MAX_SIZE,
  type CmsEnvelope,
  ID_AES256_CBC,
  openCiphertextForRecipient,
  parseCiphertextForRecipient,
} from './cms.js'
export {
  type AwsCredentials,
  type CredentialsProvider,
  createImdsCredentialsProvider,
  type ImdsOptions,
  staticCredentials,
} from './credentials.js'
export { createEgressConnector } from './egress.js'
export {
  AttestationFailedError,
  BadRequestError,
  CredentialsFailedError,
  DecryptFailedError,
  InvalidOptionError,
  KMS_ERROR_CLASSES,
  KmsError,
  type KmsErrorCode,
  MalformedCmsError,
  MissingCiphertextError,
  UnsupportedCmsError,
  UpstreamFailedError,
} from './errors.js'
export { type KmsProxy, type KmsProxyDeps, type KmsProxyOptions, startKmsProxy } from './proxy.js'
export {
  createRecipient,
  type Recipient,
  type RecipientField,
  type RecipientNsm,
  type RecipientOptions,
} from './recipient.js'
export { attachRecipient, type KmsClientLike } from './sdk.js'
