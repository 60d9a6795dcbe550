import fc from 'fast-check'
import { expect, it } from 'vitest'
import { ByteQueue } from '../src/byte-queue.js'

// The queue under every decoder, against a plain Buffer as the model.
it('ByteQueue behaves like one contiguous buffer under any mix of push, peek, take and indexOf', () => {
  const op = fc.oneof(
    fc.uint8Array({ maxLength: 12 }).map((bytes) => ({ op: 'push' as const, bytes })),
    fc.nat().map((n) => ({ op: 'peek' as const, n })),
    fc.nat().map((n) => ({ op: 'take' as const, n })),
    fc
      .tuple(fc.integer({ min: 0, max: 3 }), fc.nat())
      .map(([byte, from]) => ({ op: 'indexOf' as const, byte, from })),
  )
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const queue = new ByteQueue()
      let model = Buffer.alloc(0)
      for (const step of ops) {
        if (step.op === 'push') {
          // Small byte values make indexOf hits likely.
          const bytes = Buffer.from(step.bytes.map((b) => b % 4))
          queue.push(bytes)
          model = Buffer.concat([model, bytes])
        } else if (step.op === 'indexOf') {
          const from = step.from % (model.length + 1)
          expect(queue.indexOf(step.byte, from)).toBe(model.indexOf(step.byte, from))
        } else {
          const n = step.n % (model.length + 1)
          const got = step.op === 'peek' ? queue.peek(n) : queue.take(n)
          expect(Buffer.from(got)).toEqual(model.subarray(0, n))
          if (step.op === 'take') model = model.subarray(n)
        }
        expect(queue.length).toBe(model.length)
      }
      // Only at the end: toBuffer() merges the chunks, which would hide chunk-spanning cases.
      expect(Buffer.from(queue.toBuffer())).toEqual(model)
    }),
    { numRuns: 2000 },
  )
})
