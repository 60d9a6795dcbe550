import { InvalidValueError } from './errors.js'

// fatal: reject bad UTF-8 instead of inserting U+FFFD; ignoreBOM: keep a leading U+FEFF so text
// round-trips byte for byte.
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Decodes UTF-8, or returns undefined if the bytes are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strict.decode(bytes)
  } catch {
    return undefined
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Encodes a string as UTF-8, refusing lone surrogates (they would silently become U+FFFD). */
export function encodeUtf8(text: string, what: string): Buffer {
  if (LONE_SURROGATE.test(text)) {
    throw new InvalidValueError(`${what} contains a lone UTF-16 surrogate and cannot be encoded as UTF-8`)
  }
  return Buffer.from(text, 'utf8')
}
