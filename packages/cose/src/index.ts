/**
 * @enclave/cose: COSE_Sign1 (RFC 9052) with ECDSA ES256/ES384/ES512, as AWS Nitro Enclaves use it
 * for attestation documents and EIF signatures. Verification runs over the protected-header and
 * payload bytes as received; signing takes a key or an async signer returning raw r‖s (KMS, HSM).
 *
 * @example
 * ```ts
 * import { generateKeyPairSync } from 'node:crypto'
 * import { signCoseSign1, verifyCoseSign1 } from '@enclave/cose'
 *
 * const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
 * const signed = signCoseSign1(new TextEncoder().encode('hello'), privateKey)
 * console.log(verifyCoseSign1(signed, publicKey).algorithm) // 'ES384'
 * ```
 */

export {
  algorithmForKey,
  algorithmFromCurve,
  algorithmFromId,
  COSE_ALGORITHMS,
  type CoseAlgorithm,
  type CoseAlgorithmInfo,
  isCoseAlgorithm,
} from './algorithms.js'
export { decodeCbor, encodeCbor } from './cbor.js'
export { derToRawSignature, rawToDerSignature } from './der.js'
export {
  COSE_ERROR_CODES,
  CoseBadKeyError,
  CoseBadSignatureError,
  CoseBadSignerOutputError,
  CoseError,
  type CoseErrorCode,
  CoseInvalidOptionError,
  CoseMalformedError,
  CoseSignerFailedError,
  CoseUnsupportedAlgorithmError,
} from './errors.js'
export {
  type CoseSign1,
  type CoseSigner,
  checkCoseSign1Signature,
  coseSign1SigStructure,
  decodeCoseSign1,
  type KeyInput,
  type PublicKeyInput,
  type SignCoseSign1Options,
  signCoseSign1,
  signCoseSign1With,
  type VerifyCoseSign1Options,
  verifyCoseSign1,
} from './sign1.js'
