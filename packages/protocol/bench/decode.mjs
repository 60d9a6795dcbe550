// Decoder throughput on 64 KiB chunks (what a socket delivers). Not part of the test suite.
// Run after building: node packages/protocol/bench/decode.mjs
import {
  encodeFrame,
  encodeHeartbeat,
  encodeJsonLine,
  FrameDecoder,
  HeartbeatDecoder,
  JsonLinesDecoder,
} from '../dist/index.js'

const CHUNK = 64 * 1024
const TARGET = 256 * 1024 * 1024 // bytes pushed per case

function chunksOf(buffer) {
  const out = []
  for (let i = 0; i < buffer.length; i += CHUNK) out.push(buffer.subarray(i, i + CHUNK))
  return out
}

function run(name, make, message) {
  // A stream of whole messages, cut into chunks that ignore message boundaries.
  const repeat = Math.max(1, Math.floor((4 * 1024 * 1024) / message.length))
  const chunks = chunksOf(Buffer.concat(Array.from({ length: repeat }, () => message)))
  const bytesPerPass = chunks.reduce((n, c) => n + c.length, 0)
  const passes = Math.ceil(TARGET / bytesPerPass)
  const decoder = make()
  let messages = 0
  const start = process.hrtime.bigint()
  for (let p = 0; p < passes; p++) for (const chunk of chunks) messages += decoder.push(chunk).length
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const mib = (passes * bytesPerPass) / 1024 / 1024
  console.log(
    `${name.padEnd(34)} ${(mib / seconds).toFixed(0).padStart(6)} MiB/s ${(messages / seconds / 1e6).toFixed(2).padStart(7)} M msg/s`,
  )
}

run('FrameDecoder 16 KiB frames', () => new FrameDecoder(), encodeFrame(Buffer.alloc(16 * 1024, 1)))
run('FrameDecoder 100 B frames', () => new FrameDecoder(), encodeFrame(Buffer.alloc(100, 1)))
run('HeartbeatDecoder', () => new HeartbeatDecoder(), encodeHeartbeat('123e4567-e89b-12d3-a456-426614174000'))
run(
  'JsonLinesDecoder ~200 B log lines',
  () => new JsonLinesDecoder(),
  encodeJsonLine({
    level: 'info',
    app: 'bench',
    time: 1700000000000,
    msg: 'x'.repeat(120),
    commit: 'abcdef1',
  }),
)
