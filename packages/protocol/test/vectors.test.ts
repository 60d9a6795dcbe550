import { describe, expect, it } from 'vitest'
import {
  AckDecoder,
  bytesToUuid,
  decodeAck,
  decodeFrame,
  decodeHeartbeat,
  decodeOriginalDestination,
  encodeAck,
  encodeFrame,
  encodeHeartbeat,
  encodeJsonLine,
  encodeOriginalDestination,
  encodePipelineString,
  encodePipelineU64,
  HeartbeatDecoder,
  OriginalDestinationDecoder,
  PipelineReader,
  uuidToBytes,
} from '../src/index.js'

const hex = (text: string) => Buffer.from(text.replaceAll(' ', ''), 'hex')

describe('fixed vectors from the reference documents', () => {
  it('ACK is 06 0A (enclave-bridge)', () => {
    expect(encodeAck()).toEqual(hex('06 0a'))
    expect(decodeAck(hex('06 0a'))).toEqual({ value: true, bytesRead: 2 })
  })

  it('1.2.3.4:443 is 04 04 03 02 01 BB 01 (Sentient pf-proxy)', () => {
    const header = hex('04 04 03 02 01 bb 01')
    expect(encodeOriginalDestination({ host: '1.2.3.4', port: 443 })).toEqual(header)
    expect(decodeOriginalDestination(header)).toEqual({
      value: { host: '1.2.3.4', port: 443, family: 4 },
      bytesRead: 7,
    })
  })

  it('an IPv6 header is 19 bytes with the address as a little-endian u128', () => {
    // 2001:db8::1 in network order is 20 01 0d b8 00 .. 00 01; little-endian reverses it.
    const header = hex('06 01 00 00 00 00 00 00 00 00 00 00 00 b8 0d 01 20 bb 01')
    expect(header.length).toBe(19)
    expect(encodeOriginalDestination({ host: '2001:db8::1', port: 443 })).toEqual(header)
    expect(decodeOriginalDestination(header)?.value).toEqual({ host: '2001:db8::1', port: 443, family: 6 })
    expect(encodeOriginalDestination({ host: '::1', port: 80 })).toEqual(
      hex('06 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 50 00'),
    )
  })

  it('pipeline u64 5 is 05 00 00 00 00 00 00 00 00 (9 bytes)', () => {
    expect(encodePipelineU64(5)).toEqual(hex('05 00 00 00 00 00 00 00 00'))
    expect(encodePipelineU64(0xffff_ffff_ffff_ffffn)).toEqual(hex('ff ff ff ff ff ff ff ff 00'))
    const reader = new PipelineReader()
    reader.push(hex('05 00 00 00 00 00 00 00 00'))
    expect(reader.readU64()).toBe(5)
  })

  it('pipeline str is a u64 byte length then raw UTF-8', () => {
    expect(encodePipelineString('ls -la')).toEqual(
      Buffer.concat([hex('06 00 00 00 00 00 00 00 00'), Buffer.from('ls -la')]),
    )
    expect(encodePipelineString('é')).toEqual(hex('02 00 00 00 00 00 00 00 00 c3 a9'))
  })

  it('a heartbeat is the 16 raw UUID bytes then 0A, even when the UUID contains 0A', () => {
    const id = '0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a'
    const record = encodeHeartbeat(id)
    expect(record).toEqual(hex('0a0a0a0a 0a0a 4a0a 8a0a 0a0a0a0a0a0a 0a'))
    expect(decodeHeartbeat(record)).toEqual({ value: id, bytesRead: 17 })
    // Two coalesced records, split mid-way: a newline splitter would see 14 "lines".
    const decoder = new HeartbeatDecoder()
    const both = Buffer.concat([record, record])
    expect(decoder.push(both.subarray(0, 20))).toEqual([id])
    expect(decoder.push(both.subarray(20))).toEqual([id])
    decoder.end()
  })

  it('UUID text and bytes convert both ways', () => {
    const id = '123e4567-e89b-12d3-a456-426614174000'
    expect(uuidToBytes(id)).toEqual(hex('123e4567e89b12d3a456426614174000'))
    expect(bytesToUuid(uuidToBytes(id.toUpperCase()))).toBe(id)
  })

  it('a length-prefixed frame is a u32 big-endian length then the payload', () => {
    expect(encodeFrame(Buffer.from('hi'))).toEqual(hex('00 00 00 02 68 69'))
    expect(decodeFrame(hex('00 00 00 02 68 69 ff'))).toEqual({ value: Buffer.from('hi'), bytesRead: 6 })
  })

  it('the BridgeSettings handshake line is compact JSON then 0A', () => {
    const settings = { appName: 'simple-enclave', servers: null }
    expect(encodeJsonLine(settings).toString()).toBe('{"appName":"simple-enclave","servers":null}\n')
  })

  it('header then payload in one chunk: the payload is left in remaining()', () => {
    const decoder = new OriginalDestinationDecoder()
    expect(
      decoder.push(Buffer.concat([hex('04 04 03 02 01 bb 01'), Buffer.from('GET / HTTP/1.1\r\n')])),
    ).toEqual({
      host: '1.2.3.4',
      port: 443,
      family: 4,
    })
    expect(decoder.remaining().toString()).toBe('GET / HTTP/1.1\r\n')
    const ack = new AckDecoder()
    expect(ack.push(hex('06'))).toBeUndefined()
    expect(ack.push(hex('0a 7b'))).toBe(true)
    expect(ack.remaining()).toEqual(hex('7b'))
  })
})
