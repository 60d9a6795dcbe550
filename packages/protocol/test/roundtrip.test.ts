import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  AckDecoder,
  encodeAck,
  encodeFrame,
  encodeHeartbeat,
  encodeJsonLine,
  encodeLine,
  encodeOriginalDestination,
  encodePipelineString,
  encodePipelineU64,
  FrameDecoder,
  HeartbeatDecoder,
  JsonLinesDecoder,
  LineDecoder,
  OriginalDestinationDecoder,
  PipelineReader,
} from '../src/index.js'
import { runPreamble, runStream, splitAt, splitPoints } from './harness.js'

// Encode a list of messages, feed the bytes in a random split, and get exactly the messages back,
// with the decoder never holding more than one partial message beside the chunk being pushed.
const RUNS = { numRuns: 1000 }

// Independent of the code under test: 8-4-4-4-12 lower-case hex.
const uuidText = (bytes: Uint8Array) =>
  Buffer.from(bytes)
    .toString('hex')
    .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5')

describe('round trips in any chunk split', () => {
  it('length-prefixed frames', () => {
    const maxFrameLength = 64
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: maxFrameLength }), { maxLength: 12 }),
        splitPoints,
        (payloads, points) => {
          const wire = Buffer.concat(payloads.map((p) => encodeFrame(p, { maxFrameLength })))
          const outcome = runStream(new FrameDecoder({ maxFrameLength }), splitAt(wire, points))
          expect(outcome.error).toBeUndefined()
          expect(outcome.messages.map((m) => Buffer.from(m))).toEqual(payloads.map((p) => Buffer.from(p)))
          expect(outcome.maxHeldBesideChunk).toBeLessThanOrEqual(4 + maxFrameLength)
        },
      ),
      RUNS,
    )
  })

  it('lines', () => {
    const maxLineLength = 40
    const line = fc
      .uint8Array({ maxLength: maxLineLength })
      .map((b) => Buffer.from(b.map((x) => (x === 10 ? 11 : x))))
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), splitPoints, (lines, points) => {
        const wire = Buffer.concat(lines.map((l) => encodeLine(l, { maxLineLength })))
        const outcome = runStream(new LineDecoder({ maxLineLength }), splitAt(wire, points))
        expect(outcome.error).toBeUndefined()
        expect(outcome.messages.map((m) => Buffer.from(m))).toEqual(lines)
        expect(outcome.maxHeldBesideChunk).toBeLessThanOrEqual(maxLineLength)
      }),
      RUNS,
    )
  })

  it('JSON lines', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 8 }), splitPoints, (values, points) => {
        const wire = Buffer.concat(values.map((v) => encodeJsonLine(v)))
        const outcome = runStream(new JsonLinesDecoder(), splitAt(wire, points))
        expect(outcome.error).toBeUndefined()
        expect(outcome.messages).toEqual(values.map((v) => JSON.parse(JSON.stringify(v))))
      }),
      RUNS,
    )
  })

  it('heartbeat records (whatever bytes the UUID holds, 0x0A included)', () => {
    const id = fc.uint8Array({ minLength: 16, maxLength: 16 })
    fc.assert(
      fc.property(fc.array(id, { maxLength: 10 }), splitPoints, (ids, points) => {
        const wire = Buffer.concat(ids.map((i) => encodeHeartbeat(i)))
        const outcome = runStream(new HeartbeatDecoder(), splitAt(wire, points))
        expect(outcome.error).toBeUndefined()
        expect(outcome.messages).toEqual(ids.map(uuidText))
        expect(outcome.maxHeldBesideChunk).toBeLessThan(17)
      }),
      RUNS,
    )
  })

  it('the original-destination header, with the payload after it intact', () => {
    const v4 = fc.ipV4().map((host) => ({ host, family: 4 as const }))
    const v6 = fc.ipV6().map((host) => ({ host, family: 6 as const }))
    fc.assert(
      fc.property(
        fc.oneof(v4, v6),
        fc.integer({ min: 0, max: 65535 }),
        fc.uint8Array({ maxLength: 64 }),
        splitPoints,
        ({ host, family }, port, payload, points) => {
          const header = encodeOriginalDestination({ host, port })
          expect(header.length).toBe(family === 4 ? 7 : 19)
          const outcome = runPreamble(
            new OriginalDestinationDecoder(),
            splitAt(Buffer.concat([header, payload]), points),
          )
          expect(outcome.error).toBeUndefined()
          expect(outcome.value).toMatchObject({ port, family })
          // The decoded host is canonical text for the same address.
          expect(encodeOriginalDestination(outcome.value!)).toEqual(header)
          expect(outcome.payload).toEqual(Buffer.from(payload))
        },
      ),
      RUNS,
    )
  })

  it('ACK, with the bytes after it intact', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 32 }), splitPoints, (payload, points) => {
        const outcome = runPreamble(new AckDecoder(), splitAt(Buffer.concat([encodeAck(), payload]), points))
        expect(outcome).toEqual({ value: true, payload: Buffer.from(payload), error: undefined })
      }),
      RUNS,
    )
  })

  it('pipeline u64s, strings and raw blocks read field by field', () => {
    const maxStringLength = 48
    const field = fc.oneof(
      fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }).map((v) => ({ kind: 'u64' as const, v })),
      fc.string({ unit: 'binary', maxLength: 12 }).map((v) => ({ kind: 'str' as const, v })),
      fc
        .uint8Array({ maxLength: maxStringLength })
        .map((v) => ({ kind: 'bytes' as const, v: Buffer.from(v) })),
    )
    fc.assert(
      fc.property(fc.array(field, { maxLength: 10 }), splitPoints, (fields, points) => {
        const wire = Buffer.concat(
          fields.map((f) =>
            f.kind === 'u64'
              ? encodePipelineU64(f.v)
              : f.kind === 'str'
                ? encodePipelineString(f.v, { maxStringLength })
                : Buffer.concat([encodePipelineU64(f.v.length), f.v]),
          ),
        )
        const reader = new PipelineReader({ maxStringLength })
        const read: typeof fields = []
        let blockLength: bigint | undefined
        const drain = () => {
          while (read.length < fields.length) {
            const want = fields[read.length]!
            if (want.kind === 'u64') {
              const v = reader.readU64BigInt()
              if (v === undefined) return
              read.push({ kind: 'u64', v })
            } else if (want.kind === 'str') {
              const v = reader.readString()
              if (v === undefined) return
              read.push({ kind: 'str', v })
            } else {
              blockLength ??= reader.readU64BigInt()
              if (blockLength === undefined) return
              const v = reader.readBytes(blockLength)
              if (v === undefined) return
              blockLength = undefined
              read.push({ kind: 'bytes', v: Buffer.from(v) })
            }
          }
        }
        for (const chunk of splitAt(wire, points)) {
          reader.push(chunk)
          drain()
          expect(reader.bufferedLength).toBeLessThanOrEqual(maxStringLength + 9 + chunk.length)
        }
        reader.end()
        expect(read).toEqual(fields)
        expect(reader.bufferedLength).toBe(0)
      }),
      RUNS,
    )
  })
})
