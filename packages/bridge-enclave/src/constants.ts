/** Wire constants shared with DIMO's enclave-bridge (Go); both halves of our bridge use them. */

/** The parent instance's vsock CID, where the bridge host listens. */
export const BRIDGE_HOST_CID = 3
/** vsock port of the handshake and of the watchdog connections. */
export const BRIDGE_INIT_PORT = 5000
/** vsock port the enclave writes its JSON log lines to. */
export const BRIDGE_LOG_PORT = 4999
/** Largest handshake line (environment or settings JSON) either side accepts. */
export const MAX_HANDSHAKE_LINE_BYTES = 1024 * 1024
/** Each handshake step must complete within this many milliseconds. */
export const HANDSHAKE_STEP_TIMEOUT_MS = 10_000
/** The host gives up dialing a client-tunnel target after this long. */
export const CLIENT_DIAL_TIMEOUT_MS = 10_000
/** `requestTimeout: 0` means this (Go's default: 5 minutes). */
export const DEFAULT_CLIENT_REQUEST_TIMEOUT_MS = 5 * 60_000
/** Longest `host:port` line a client tunnel accepts (a DNS name is at most 253 bytes). */
export const MAX_TARGET_LINE_BYTES = 300
/** Longest error line the host sends back on a failed client-tunnel dial. */
export const MAX_DIAL_ERROR_LINE_BYTES = 4096
/**
 * First byte of the host's answer to a failed client-tunnel dial (ASCII NAK), followed by a JSON
 * object `{"code","message"}` and LF. A Go enclave reads it as "not an ACK" and fails, as it would
 * on the Go host's silent close; our enclave library turns it into a typed error.
 */
export const NAK_BYTE = 0x15
