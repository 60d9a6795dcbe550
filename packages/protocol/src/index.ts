/**
 * @enclave/protocol: pure, bounded, incremental encoders and decoders for the Enclave Framework's
 * wire formats. No I/O: feed decoders the chunks a socket gives you, in any split.
 *
 * @example
 * ```ts
 * import { OriginalDestinationDecoder } from '@enclave/protocol'
 *
 * const header = new OriginalDestinationDecoder()
 * socket.on('data', function onData(chunk) {
 *   const destination = header.push(chunk) // throws MalformedHeaderError on a bad version byte
 *   if (!destination) return
 *   socket.off('data', onData)
 *   dial(destination.host, destination.port, header.remaining()) // remaining(): payload after the header
 * })
 * ```
 */

export { AckDecoder, decodeAck, encodeAck } from './ack.js'
export type { DecodeResult, MessageDecoder, PreambleDecoder } from './decoder.js'
export {
  BufferOverflowError,
  DecoderDoneError,
  FrameTooLargeError,
  InvalidAckError,
  InvalidAddressError,
  InvalidJsonError,
  InvalidOptionError,
  InvalidPaddingError,
  InvalidUtf8Error,
  InvalidUuidError,
  InvalidValueError,
  isProtocolError,
  LineTooLongError,
  MalformedHeaderError,
  MalformedHeartbeatError,
  PROTOCOL_ERROR_CLASSES,
  ProtocolError,
  type ProtocolErrorCode,
  type ProtocolErrorOptions,
  TruncatedInputError,
} from './errors.js'
export { decodeFrame, encodeFrame, FrameDecoder } from './frame.js'
export {
  bytesToUuid,
  decodeHeartbeat,
  encodeHeartbeat,
  HEARTBEAT_LENGTH,
  HeartbeatDecoder,
  uuidToBytes,
} from './heartbeat.js'
export { encodeJsonLine, encodeLine, JsonLinesDecoder, LineDecoder } from './lines.js'
export {
  type FrameOptions,
  type JsonLinesOptions,
  type LineOptions,
  type PipelineOptions,
  PROTOCOL_DEFAULTS,
} from './options.js'
export {
  decodeOriginalDestination,
  encodeOriginalDestination,
  type OriginalDestination,
  OriginalDestinationDecoder,
} from './original-destination.js'
export {
  encodePipelineString,
  encodePipelineU64,
  PIPELINE_U64_LENGTH,
  PipelineReader,
} from './pipeline.js'
