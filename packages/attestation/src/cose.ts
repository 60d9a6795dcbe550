/**
 * COSE_Sign1 for attestation documents: @enclave/cose's implementation behind this package's
 * long-standing API. Only the errors differ: they become this package's classes (the @enclave/cose
 * error is the `cause`), so callers that catch MalformedError and friends keep working.
 */

import {
  CoseError,
  CoseSignerFailedError,
  decodeCoseSign1 as coseDecode,
  signCoseSign1 as coseSign,
  signCoseSign1With as coseSignWith,
  verifyCoseSign1 as coseVerify,
} from '@enclave/cose'
import {
  CoseSignatureError,
  InvalidOptionError,
  MalformedError,
  UnsupportedAlgorithmError,
} from './errors.js'

export {
  type CoseAlgorithm,
  type CoseSign1,
  checkCoseSign1Signature,
  coseSign1SigStructure,
  type KeyInput,
  type PublicKeyInput,
  type SignCoseSign1Options,
  type VerifyCoseSign1Options,
} from '@enclave/cose'

function translate(err: unknown): never {
  // An external signer's own failure reaches the caller unwrapped, as it always has.
  if (err instanceof CoseSignerFailedError) throw err.cause
  if (!(err instanceof CoseError)) throw err
  switch (err.code) {
    case 'ENCLAVE_COSE_MALFORMED':
      throw new MalformedError(err.message, { cause: err })
    case 'ENCLAVE_COSE_BAD_SIGNATURE':
      throw new CoseSignatureError()
    case 'ENCLAVE_COSE_INVALID_OPTION':
      throw new InvalidOptionError(err.message, { cause: err })
    default:
      // Unsupported alg, unusable key, or a signer output that is not raw r‖s.
      throw new UnsupportedAlgorithmError(err.message, { cause: err })
  }
}

function translated<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args) => {
    try {
      return fn(...args)
    } catch (err) {
      translate(err)
    }
  }
}

/** Decodes an untagged or tag-18 COSE_Sign1; throws MalformedError naming what is wrong. */
export const decodeCoseSign1 = translated(coseDecode)

/** Signs `payload` with protected header {1: alg} and a raw r‖s signature (the NSM's and nitro-cli's shape). */
export const signCoseSign1 = translated(coseSign)

/** Decodes and verifies; throws MalformedError, UnsupportedAlgorithmError or CoseSignatureError. */
export const verifyCoseSign1 = translated(coseVerify)

/** signCoseSign1 with any signer (a KMS, an HSM) returning the raw r‖s signature of the Sig_structure. */
export const signCoseSign1With: typeof coseSignWith = (...args) => coseSignWith(...args).catch(translate)
