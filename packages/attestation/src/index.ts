/**
 * @enclave/attestation: trust decisions for AWS Nitro Enclaves.
 *
 * ```ts
 * import { createAttestationVerifier } from '@enclave/attestation'
 * const verifier = createAttestationVerifier({ pcrs: { 0: expectedPcr0Hex } })
 * const result = verifier.verify(documentBytes)
 * if (!result.ok) console.error(result.failures.map((f) => f.reason))
 * ```
 */

export {
  ATTESTATION_EXTENSION_OID,
  ATTESTED_TLS_BINDING_TAG,
  type AttestedConnector,
  type AttestedPeerOptions,
  type AttestedTlsCredentials,
  type AttestedTlsCredentialsOptions,
  attestationFromCertificate,
  connectAttested,
  createAttestedCheckServerIdentity,
  createAttestedConnector,
  createAttestedTlsCredentials,
  type KeyBinding,
  spkiDigest,
  taggedDigest,
  verifyAttestedCertificate,
} from './attested-tls.js'
export { fromHex, toHex } from './bytes.js'
export {
  type CoseAlgorithm,
  type CoseSign1,
  coseSign1SigStructure,
  decodeCoseSign1,
  type KeyInput,
  type PublicKeyInput,
  type SignCoseSign1Options,
  signCoseSign1,
  signCoseSign1With,
  type VerifyCoseSign1Options,
  verifyCoseSign1,
} from './cose.js'
export { createDevNsm, type DevNsm, type DevNsmOptions } from './dev-nsm.js'
export { type AttestationDocument, type ParsedAttestation, parseAttestationDocument } from './document.js'
export {
  ATTESTATION_ERROR_CODES,
  AttestationError,
  type AttestationErrorCode,
  AttestedPeerError,
  CoseSignatureError,
  DevCaError,
  InvalidOptionError,
  MalformedError,
  NSM_ERROR_NAMES,
  NsmBufferTooSmallError,
  NsmError,
  type NsmErrorName,
  NsmInputTooLargeError,
  NsmInternalError,
  NsmInvalidArgumentError,
  NsmInvalidIndexError,
  NsmInvalidOperationError,
  NsmInvalidResponseError,
  NsmReadOnlyIndexError,
  NsmUnavailableError,
  nsmErrorFromName,
  UnsupportedAlgorithmError,
  VerificationFailedError,
} from './errors.js'
export { type AttestationRequest, createNsmClient, type Nsm, type NsmTransport } from './nsm.js'
export {
  decodeNsmRequest,
  decodeNsmResponse,
  encodeNsmRequest,
  encodeNsmResponse,
  NSM_ATTESTATION_FIELD_MAX,
  NSM_REQUEST_MAX_SIZE,
  NSM_RESPONSE_MAX_SIZE,
  type NsmDescription,
  type NsmDigest,
  type NsmRequest,
  type NsmResponse,
} from './nsm-codec.js'
export { type NsmDeviceOptions, openNsmDevice } from './nsm-device.js'
export { type OpenNsmOptions, openNsm } from './open-nsm.js'
export type { AttestationPolicy, VerifierOptions } from './options.js'
export {
  extendPcr,
  PCR_LENGTH,
  pcr3FromRoleArn,
  pcr4FromInstanceId,
  pcr8FromCertificate,
  pcrFromMeasurement,
} from './pcr.js'
export {
  FAILURE_REASONS,
  type FailureReason,
  type VerificationFailure,
  type VerificationResult,
} from './result.js'
export { AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256 } from './roots.js'
export { type AttestationVerifier, createAttestationVerifier } from './verify.js'
export type { Curve } from './x509-issue.js'
