import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  AckDecoder,
  encodeAck,
  encodeFrame,
  encodeHeartbeat,
  encodeOriginalDestination,
  encodePipelineString,
  encodePipelineU64,
  FrameDecoder,
  HeartbeatDecoder,
  isProtocolError,
  JsonLinesDecoder,
  LineDecoder,
  type MessageDecoder,
  OriginalDestinationDecoder,
  PipelineReader,
  type PreambleDecoder,
} from '../src/index.js'
import { runPreamble, runStream, splitAt, splitPoints } from './harness.js'

// Hostile input: random bytes and mutated valid encodings. Whatever arrives, a decoder either
// returns messages or throws a ProtocolError; the outcome does not depend on how the bytes were
// chunked; and neither what it holds nor what it allocates grows past its maximum.

const RUNS = { numRuns: 1500 }

/** Valid bytes with a few random edits (set, insert, delete), or plain random bytes. */
function hostile(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> {
  const edit = fc.tuple(
    fc.constantFrom('set', 'insert', 'delete'),
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
  )
  const mutated = fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([bytes, edits]) => {
    const out = [...bytes]
    for (const [op, at, byte] of edits) {
      const i = at % (out.length + 1)
      if (op === 'insert') out.splice(i, 0, byte)
      else if (op === 'set' && i < out.length) out[i] = byte
      else if (op === 'delete') out.splice(i, 1)
    }
    return Buffer.from(out)
  })
  return fc.oneof(
    fc.uint8Array({ maxLength: 160 }).map((b) => Buffer.from(b)),
    mutated,
    valid.map((b) => Buffer.from(b)),
  )
}

// Records the size of every Buffer allocated while measure() runs (the code under test only, not
// fast-check's generators).
let largestAllocation = 0
let recording = false
function measure<T>(run: () => T): T {
  largestAllocation = 0
  recording = true
  try {
    return run()
  } finally {
    recording = false
  }
}
const note = (size: number) => {
  if (recording) largestAllocation = Math.max(largestAllocation, size)
}
const originals = { alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe, concat: Buffer.concat }
beforeEach(() => {
  Buffer.alloc = ((size: number, ...rest: never[]) => {
    note(size)
    return originals.alloc(size, ...rest)
  }) as typeof Buffer.alloc
  Buffer.allocUnsafe = ((size: number) => {
    note(size)
    return originals.allocUnsafe(size)
  }) as typeof Buffer.allocUnsafe
  Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
    const out = originals.concat(list, total)
    note(out.length)
    return out
  }) as typeof Buffer.concat
})
afterEach(() => {
  Object.assign(Buffer, originals)
})

interface StreamCase {
  name: string
  make: () => MessageDecoder<unknown>
  valid: fc.Arbitrary<Uint8Array>
  /** Most bytes one partial message may take (prefix included). */
  bound: number
}

const MAX = 32
const streamCases: StreamCase[] = [
  {
    name: 'FrameDecoder',
    make: () => new FrameDecoder({ maxFrameLength: MAX }),
    valid: fc
      .array(fc.uint8Array({ maxLength: MAX }), { maxLength: 5 })
      .map((ps) => Buffer.concat(ps.map((p) => encodeFrame(p)))),
    bound: 4 + MAX,
  },
  {
    name: 'LineDecoder',
    make: () => new LineDecoder({ maxLineLength: MAX }),
    valid: fc.array(fc.string({ maxLength: MAX }), { maxLength: 5 }).map((ls) => Buffer.from(ls.join('\n'))),
    bound: MAX + 1,
  },
  {
    name: 'JsonLinesDecoder',
    make: () => new JsonLinesDecoder({ maxLineLength: MAX }),
    valid: fc
      .array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 4 })
      .map((vs) => Buffer.concat(vs.map((v) => Buffer.from(`${JSON.stringify(v)}\n`)))),
    bound: MAX + 1,
  },
  {
    name: 'HeartbeatDecoder',
    make: () => new HeartbeatDecoder(),
    valid: fc
      .array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { maxLength: 4 })
      .map((ids) => Buffer.concat(ids.map((id) => encodeHeartbeat(id)))),
    bound: 17,
  },
]

describe.each(streamCases)('$name under hostile input', ({ make, valid, bound }) => {
  it('throws only ProtocolErrors, the same way for any split, within its memory bound', () => {
    fc.assert(
      fc.property(hostile(valid), splitPoints, (bytes, points) => {
        const whole = measure(() => runStream(make(), [bytes]))
        expect(largestAllocation).toBeLessThanOrEqual(bound)
        const chunks = splitAt(bytes, points)
        const split = measure(() => runStream(make(), chunks))
        expect(largestAllocation).toBeLessThanOrEqual(bound)
        expect(split.messages).toEqual(whole.messages)
        expect(split.error).toBe(whole.error)
        expect(whole.maxHeldBesideChunk).toBeLessThanOrEqual(bound)
        expect(split.maxHeldBesideChunk).toBeLessThanOrEqual(bound)
      }),
      RUNS,
    )
  })

  it('never allocates more than one message when fed one byte at a time', () => {
    fc.assert(
      fc.property(hostile(valid), (bytes) => {
        const chunks = splitAt(bytes, [...bytes.keys()])
        const outcome = measure(() => runStream(make(), chunks))
        expect(outcome.maxHeldBesideChunk).toBeLessThanOrEqual(bound)
        expect(largestAllocation).toBeLessThanOrEqual(bound)
      }),
      { numRuns: 500 },
    )
  })
})

const preambleCases: {
  name: string
  make: () => PreambleDecoder<unknown>
  valid: fc.Arbitrary<Uint8Array>
}[] = [
  {
    name: 'OriginalDestinationDecoder',
    make: () => new OriginalDestinationDecoder(),
    valid: fc
      .tuple(
        fc.oneof(fc.ipV4(), fc.ipV6()),
        fc.integer({ min: 0, max: 65535 }),
        fc.uint8Array({ maxLength: 8 }),
      )
      .map(([host, port, tail]) => Buffer.concat([encodeOriginalDestination({ host, port }), tail])),
  },
  {
    name: 'AckDecoder',
    make: () => new AckDecoder(),
    valid: fc.uint8Array({ maxLength: 8 }).map((tail) => Buffer.concat([encodeAck(), tail])),
  },
]

describe.each(preambleCases)('$name under hostile input', ({ make, valid }) => {
  it('throws only ProtocolErrors and splits value from payload the same way for any split', () => {
    fc.assert(
      fc.property(hostile(valid), splitPoints, (bytes, points) => {
        const whole = runPreamble(make(), [bytes])
        const split = runPreamble(make(), splitAt(bytes, points))
        expect(split).toEqual(whole)
        if (whole.value !== undefined) expect(whole.payload.length).toBeLessThan(bytes.length)
      }),
      RUNS,
    )
  })
})

describe('PipelineReader under hostile input', () => {
  const maxStringLength = 24
  type Kind = 'u64' | 'str' | 'block'
  const valid = fc
    .array(
      fc.oneof(
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => encodePipelineU64(v)),
        fc.string({ maxLength: 12 }).map((s) => encodePipelineString(s)),
      ),
      { maxLength: 5 },
    )
    .map((parts) => Buffer.concat(parts))

  /** Reads fields of the given kinds in turn, as far as the bytes allow; returns what was read and the error. */
  function read(chunks: Buffer[], kinds: Kind[]) {
    const reader = new PipelineReader({ maxStringLength })
    const values: unknown[] = []
    const drain = () => {
      while (values.length < kinds.length) {
        const kind = kinds[values.length]!
        const v =
          kind === 'u64' ? reader.readU64BigInt() : kind === 'str' ? reader.readString() : reader.readBytes(5)
        if (v === undefined) return
        values.push(v)
      }
    }
    try {
      for (const chunk of chunks) {
        if (values.length === kinds.length) break // a caller that has read all it wants stops feeding
        reader.push(chunk)
        drain()
        expect(reader.bufferedLength).toBeLessThanOrEqual(maxStringLength + 9 + chunk.length)
      }
      reader.end()
      drain()
      return { values, error: undefined }
    } catch (error) {
      if (!isProtocolError(error)) throw error
      return { values, error: error.code }
    }
  }

  it('throws only ProtocolErrors, the same way for any split, within its memory bound', () => {
    const kinds = fc.array(fc.constantFrom<Kind>('u64', 'str', 'block'), { maxLength: 8 })
    fc.assert(
      fc.property(hostile(valid), kinds, splitPoints, (bytes, fields, points) => {
        const whole = measure(() => read([bytes], fields))
        expect(largestAllocation).toBeLessThanOrEqual(9 + maxStringLength)
        const chunks = splitAt(bytes, points)
        const split = measure(() => read(chunks, fields))
        expect(largestAllocation).toBeLessThanOrEqual(9 + maxStringLength)
        expect(split).toEqual(whole)
      }),
      RUNS,
    )
  })
})
