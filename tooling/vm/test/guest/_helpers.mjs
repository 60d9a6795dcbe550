// @ts-check
// Shared by this tool's guest suites (the leading underscore keeps it from being run as a suite).
import { createHash } from 'node:crypto'

/** The built packages, by folder name, from inside the guest (the same path as on the host). */
export const packageDist = (/** @type {string} */ name) =>
  new URL(`../../../../packages/${name}/dist/index.js`, import.meta.url).href

/** @param {Buffer} data */
export const sha = (data) => createHash('sha256').update(data).digest('hex')

/**
 * Everything the stream delivers up to its end. Not `for await`: the iterator destroys a socket
 * at the end of its readable side, which would also cut its writable side.
 * @param {import('node:stream').Readable} stream @returns {Promise<Buffer>}
 */
export function readAll(stream) {
  return new Promise((resolve, reject) => {
    /** @type {Buffer[]} */
    const chunks = []
    stream.on('data', (chunk) => chunks.push(chunk))
    stream.once('end', () => resolve(Buffer.concat(chunks)))
    stream.once('error', reject)
    stream.resume()
  })
}

/**
 * The error `fn` rejects with; fails when it resolves.
 * @param {() => Promise<unknown>} fn @returns {Promise<any>}
 */
export async function rejection(fn) {
  try {
    await fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

/**
 * Polls `check` until it returns true, for at most `timeoutMs`.
 * @param {() => boolean} check @param {string} what @param {number} [timeoutMs]
 */
export async function waitFor(check, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
