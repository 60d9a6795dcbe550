/**
 * @enclave/enclave-api: the enclave's local HTTP API (127.0.0.1:<api.listen_port>).
 *
 * ```ts
 * import { openNsm } from '@enclave/attestation'
 * import { createEnclaveApiServer } from '@enclave/enclave-api'
 * const api = createEnclaveApiServer({ port: 9000 }, { nsm: await openNsm(), logger })
 * await api.listen()
 * ```
 */

export type { Logger } from '@enclave/logger'
export { ENCRYPTION_INFO, NONCE_LENGTH } from './encryption.js'
export {
  BadRequestError,
  BodyTooLargeError,
  DecryptFailedError,
  ENCLAVE_API_ERROR_CLASSES,
  EnclaveApiError,
  type EnclaveApiErrorCode,
  InvalidOptionError,
  MethodNotAllowedError,
  NotFoundError,
  NsmFailedError,
  ReplayedNonceError,
} from './errors.js'
export { DEFAULTS as ENCLAVE_API_DEFAULTS, type EnclaveApiOptions } from './options.js'
export {
  type ApiNsm,
  createEnclaveApiServer,
  type EnclaveApiDeps,
  type EnclaveApiServer,
} from './server.js'
