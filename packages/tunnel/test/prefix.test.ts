import type { Socket } from 'node:net'
import { PassThrough } from 'node:stream'
import { encodeOriginalDestination, OriginalDestinationDecoder } from '@enclave/protocol'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { readPrefix } from '../src/index.js'

// readPrefix only uses the stream side of a socket; a PassThrough lets fast-check try thousands
// of chunkings quickly. The socket behaviour itself is covered by the tunnel tests.
function feed(chunks: Uint8Array[], end: boolean): Socket {
  const stream = new PassThrough()
  setImmediate(() => {
    for (const chunk of chunks) stream.write(chunk)
    if (end) stream.end()
  })
  return stream as unknown as Socket
}

function headerReader(chunk: Buffer, decoder: OriginalDestinationDecoder) {
  const destination = decoder.push(chunk)
  return destination ? { value: destination, rest: decoder.remaining() } : undefined
}

/** Splits bytes at the given cut points. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let last = 0
  for (const point of [...points, bytes.length]) {
    if (point > last) chunks.push(bytes.subarray(last, point))
    last = point
  }
  return chunks
}

describe('readPrefix with the transparent header', () => {
  it('gives the same destination and payload for any chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.ipV4(), fc.ipV6()),
        fc.integer({ min: 0, max: 65_535 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (host, port, payload, cuts) => {
          const header = encodeOriginalDestination({ host, port })
          const stream = feed(split(Buffer.concat([header, payload]), cuts), true)
          const decoder = new OriginalDestinationDecoder()
          const { value, rest } = await readPrefix(stream, (chunk) => headerReader(chunk, decoder))
          expect(value.port).toBe(port)
          expect(encodeOriginalDestination(value).equals(header)).toBe(true)
          // The payload is what came after the header plus whatever the stream still holds.
          const later: Buffer[] = [rest]
          stream.on('data', (chunk: Buffer) => later.push(chunk))
          stream.resume()
          await new Promise((resolve) => stream.once('end', resolve))
          expect(Buffer.concat(later).equals(Buffer.from(payload))).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('rejects random bytes only with typed errors', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (bytes, cuts) => {
          const decoder = new OriginalDestinationDecoder()
          try {
            await readPrefix(feed(split(bytes, cuts), true), (chunk) => headerReader(chunk, decoder), {
              maxBytes: 64,
            })
          } catch (error) {
            expect((error as { code?: string }).code).toMatch(/^ENCLAVE_(PROTOCOL|TUNNEL)_/)
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('stops at maxBytes when the parser never finishes', async () => {
    const stream = feed([Buffer.alloc(100), Buffer.alloc(100)], false)
    await expect(readPrefix(stream, () => undefined, { maxBytes: 150 })).rejects.toMatchObject({
      code: 'ENCLAVE_TUNNEL_PREFIX_TOO_LARGE',
    })
  })
})
