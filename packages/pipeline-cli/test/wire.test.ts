import { PassThrough } from 'node:stream'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isPipelineError, LimitExceededError } from '../src/index.js'
import { Channel, type Frame } from '../src/wire.js'

const limits = { maxChunk: 1024, maxControl: 1024 }

async function drain(bytes: Buffer[]): Promise<{ frames: Frame[]; error: unknown }> {
  const pipe = new PassThrough()
  const channel = new Channel(pipe, limits)
  for (const chunk of bytes) pipe.write(chunk)
  pipe.end()
  const frames: Frame[] = []
  try {
    for (;;) {
      const frame = await channel.next()
      if (!frame) return { frames, error: undefined }
      frames.push(frame)
    }
  } catch (error) {
    return { frames, error }
  }
}

describe('Channel', () => {
  it('round-trips control and data frames split anywhere', async () => {
    const pipe = new PassThrough()
    const writer = new Channel(pipe, limits)
    await writer.sendControl({ type: 'hello', n: 1 })
    await writer.sendData('stdout', Buffer.from('abc'))
    await writer.sendData('file', Buffer.alloc(2500, 1)) // split into chunks of maxChunk
    pipe.end()
    const all: Buffer[] = []
    for await (const chunk of pipe) all.push(chunk as Buffer)
    const wire = Buffer.concat(all)
    const pieces = [wire.subarray(0, 3), wire.subarray(3, 17), wire.subarray(17)]
    const { frames, error } = await drain(pieces)
    expect(error).toBeUndefined()
    expect(
      frames.map((f) => (f.kind === 'control' ? f.message.type : `${f.stream}:${f.bytes.length}`)),
    ).toEqual(['hello', 'stdout:3', 'file:1024', 'file:1024', 'file:452'])
  })

  it('rejects an oversized length prefix before buffering the payload', async () => {
    const { error } = await drain([Buffer.from([0, 1, 0, 0])])
    expect(error).toBeInstanceOf(LimitExceededError)
  })

  it('turns any byte sequence into frames or a typed PipelineError (fuzz)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), async (chunks) => {
        const { error } = await drain(chunks.map((chunk) => Buffer.from(chunk)))
        if (error !== undefined) expect(isPipelineError(error)).toBe(true)
      }),
      { numRuns: 300 },
    )
  })

  it('accepts structurally valid frames with random JSON and never throws an untyped error (fuzz)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.integer({ min: 0, max: 6 }), async (value, kind) => {
        const body = Buffer.from(JSON.stringify(value) ?? 'null')
        const header = Buffer.alloc(5)
        header.writeUInt32BE(body.length + 1, 0)
        header[4] = kind
        const { error } = await drain([header, body])
        if (error !== undefined) expect(isPipelineError(error)).toBe(true)
      }),
      { numRuns: 300 },
    )
  })
})
