/**
 * @enclave/ingress: inbound connections for Nitro Enclaves. The host half forwards TCP
 * listen_port to vsock (enclave CID, listen_port); the enclave half forwards to the app on
 * 127.0.0.1:listen_port, optionally terminating TLS (the manifest's cert_file/key_file, mTLS with a
 * client CA) and sending the app a PROXY protocol v2 header with the real client address.
 *
 * @example
 * ```ts
 * import { startIngressEnclave, startIngressHost } from '@enclave/ingress'
 *
 * // inside the enclave
 * await startIngressEnclave({ listenPort: 8443, tls: { certFile, keyFile, clientCaFile }, proxyProtocol: true })
 * // on the parent instance
 * await startIngressHost({ listenPort: 8443, enclaveCid: 16, proxyProtocol: true })
 * ```
 */

export type { Logger } from '@enclave/tunnel'
export { type IngressEnclave, startIngressEnclave } from './enclave.js'
export {
  INGRESS_ERROR_CODES,
  IngressError,
  type IngressErrorCode,
  InvalidOptionsError,
  MalformedProxyHeaderError,
  TlsFilesError,
} from './errors.js'
export { startIngressHost } from './host.js'
export {
  type Context as IngressContext,
  DEFAULTS,
  type IngressEnclaveOptions,
  type IngressHostOptions,
  type IngressTlsOptions,
  type TlsCredentials,
} from './options.js'
export {
  enclaveOptionsFor,
  type IngressManifestEntry,
  type IngressPlugin,
  type IngressPluginContext,
  ingressFromManifest,
  ingressPlugin,
} from './plugin.js'
export {
  type Endpoint,
  encodeProxyV2,
  PP2_TYPE_SSL,
  PROXY_V2_SIGNATURE,
  type ProxyHeader,
  ProxyV2Decoder,
  sslTlv,
  type Tlv,
} from './proxy-v2.js'
