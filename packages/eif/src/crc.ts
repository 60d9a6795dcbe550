import * as zlib from 'node:zlib'

/**
 * CRC-32/ISO-HDLC (zlib's crc32) through node:zlib, plus crc32Combine so the writer can stream a
 * section of unknown length first and prepend its header (which holds that length) afterwards.
 */

type Crc32Fn = (data: Uint8Array | string, value?: number) => number

// zlib.crc32 exists from Node 20.15 / 22.2; @types/node 20.19 may not declare it.
const nativeCrc32 = (zlib as unknown as { crc32?: Crc32Fn }).crc32

/** Continues `previous` (0 to start) over `data`; returns an unsigned 32-bit value. */
export function crc32(data: Uint8Array, previous = 0): number {
  if (nativeCrc32 === undefined) {
    throw new Error('node:zlib crc32 is missing: @enclave/eif needs Node.js >= 20.15 (>= 20.19 supported)')
  }
  return nativeCrc32(data, previous) >>> 0
}

// The reflected polynomial 0x04C11DB7; bit 31 of a word is the x^0 coefficient.
const POLY = 0xedb88320

/** a·b mod P over GF(2), both in the reflected bit order. */
function multModP(a: number, b: number): number {
  let m = 0x80000000
  let p = 0
  let bb = b >>> 0
  for (;;) {
    if ((a & m) !== 0) {
      p ^= bb
      if ((a & (m - 1)) === 0) break
    }
    m >>>= 1
    bb = bb & 1 ? (bb >>> 1) ^ POLY : bb >>> 1
  }
  return p >>> 0
}

// X2N[k] = x^(2^k) mod P.
const X2N: number[] = (() => {
  const table: number[] = []
  let p = 0x40000000 // x^1
  for (let k = 0; k < 32; k++) {
    table.push(p)
    p = multModP(p, p)
  }
  return table
})()

/** x^(n·2^k) mod P, for any non-negative safe integer n. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000 // x^0
  let rest = n
  let kk = k
  while (rest > 0) {
    if (rest % 2 === 1) p = multModP(X2N[kk & 31]!, p)
    rest = Math.floor(rest / 2)
    kk++
  }
  return p
}

/** The CRC of A‖B from crc(A), crc(B) and the length of B in bytes. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multModP(x2nModP(lengthB, 3), crcA >>> 0) ^ (crcB >>> 0)) >>> 0
}
