/**
 * The real NSM: /dev/nsm through the native addon (native/nsm.c), loaded lazily the node-gyp-build
 * way. Only inside a Nitro enclave is there a device; elsewhere opening it is NsmUnavailableError.
 */

import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { constants as osConstants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { InvalidOptionError, NsmInputTooLargeError, NsmInternalError, NsmUnavailableError } from './errors.js'
import type { NsmTransport } from './nsm.js'
import { NSM_REQUEST_MAX_SIZE, NSM_RESPONSE_MAX_SIZE } from './nsm-codec.js'

/** native/nsm.c: every function returns a number, >= 0 or -errno (an addon returning anything else is a bug). */
export interface NsmAddon {
  open(path: string): unknown
  call(fd: number, request: Buffer, response: Buffer, callback: (result: number) => void): unknown
  close(fd: number): unknown
}

/** Linux PATH_MAX, the addon's path buffer (NUL included). */
const PATH_MAX = 4096

const ERRNO_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(osConstants.errno).map(([name, value]) => [value, name])),
)
const errnoName = (negative: unknown) =>
  typeof negative === 'number'
    ? (ERRNO_NAMES[-negative] ?? `errno ${-negative}`)
    : `not a number: ${String(negative)}`

function packageRoot(): string {
  const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url))
  return join(here, '..')
}

let loaded: { addon: NsmAddon } | { error: NsmUnavailableError } | undefined

/** @internal the addon, or NsmUnavailableError when it cannot be loaded. */
export function loadAddon(): NsmAddon {
  if (!loaded) {
    const root = packageRoot()
    try {
      const require = createRequire(join(root, 'package.json'))
      const nodeGypBuild = require('node-gyp-build') as (dir: string) => NsmAddon
      loaded = { addon: nodeGypBuild(root) }
    } catch (cause) {
      loaded = {
        error: new NsmUnavailableError(
          `the NSM addon could not be loaded from ${root} (${(cause as Error).message.split('\n')[0]}); ` +
            'rebuild it with "npx node-gyp rebuild" there, or use the dev NSM outside an enclave',
          { cause },
        ),
      }
    }
  }
  if ('error' in loaded) throw loaded.error
  return loaded.addon
}

export interface NsmDeviceOptions {
  /** @default '/dev/nsm' */
  path?: string
  /** How long close() waits for calls in flight before rejecting with NsmInternalError. @default 30000 */
  closeTimeoutMs?: number
}

/** Opens /dev/nsm (needs CAP_SYS_ADMIN per the uapi header) as an NsmTransport. */
export function openNsmDevice(options: NsmDeviceOptions = {}): NsmTransport {
  const path = options.path ?? '/dev/nsm'
  if (Buffer.byteLength(path) >= PATH_MAX) {
    throw new InvalidOptionError(
      `NSM device path is ${Buffer.byteLength(path)} bytes; the limit is ${PATH_MAX - 1}`,
    )
  }
  if (process.platform !== 'linux') {
    throw new NsmUnavailableError(
      `the NSM exists only in Linux Nitro enclaves (this is ${process.platform}); use the dev NSM`,
    )
  }
  if (!existsSync(path)) {
    throw new NsmUnavailableError(
      `${path} does not exist: not inside a Nitro enclave (use the dev NSM for development)`,
    )
  }
  const closeTimeoutMs = options.closeTimeoutMs ?? 30_000
  if (!Number.isFinite(closeTimeoutMs) || closeTimeoutMs <= 0)
    throw new InvalidOptionError(`closeTimeoutMs must be a positive number, got ${closeTimeoutMs}`)
  return openNsmDeviceWith(loadAddon(), path, closeTimeoutMs)
}

/** @internal the transport over a given addon (tests inject one to check the JS-side contract). */
export function openNsmDeviceWith(addon: NsmAddon, path: string, closeTimeoutMs: number): NsmTransport {
  const fd = addon.open(path)
  if (typeof fd !== 'number' || fd < 0) throw new NsmUnavailableError(`cannot open ${path}: ${errnoName(fd)}`)
  let state: 'open' | 'closed' = 'open'
  let inFlight = 0

  return {
    call(request) {
      if (state === 'closed') return Promise.reject(new NsmUnavailableError(`${path} is closed`))
      if (request.length > NSM_REQUEST_MAX_SIZE) {
        return Promise.reject(
          new NsmInputTooLargeError(
            `NSM request is ${request.length} bytes; the limit is ${NSM_REQUEST_MAX_SIZE}`,
          ),
        )
      }
      const response = Buffer.alloc(NSM_RESPONSE_MAX_SIZE)
      return new Promise((resolve, reject) => {
        inFlight++
        const queued = addon.call(fd, Buffer.from(request), response, (result) => {
          inFlight--
          if (result >= 0) resolve(new Uint8Array(response.subarray(0, result)))
          else if (-result === osConstants.errno.EMSGSIZE)
            reject(new NsmInputTooLargeError(`NSM ioctl: ${errnoName(result)}`))
          else reject(new NsmInternalError(`NSM ioctl on ${path} failed: ${errnoName(result)}`))
        })
        // anything but a non-negative number means the callback will never run: settle now
        if (typeof queued !== 'number' || queued < 0) {
          inFlight--
          reject(new NsmInternalError(`NSM ioctl could not be queued: ${errnoName(queued)}`))
        }
      })
    },
    async close() {
      if (state === 'closed') return
      state = 'closed'
      // a call on the thread pool still uses the fd: close once it is done, but not wait forever
      const deadline = Date.now() + closeTimeoutMs
      while (inFlight > 0) {
        if (Date.now() >= deadline) {
          throw new NsmInternalError(
            `closing ${path}: ${inFlight} NSM call(s) still in flight after ${closeTimeoutMs} ms; the descriptor is left open`,
          )
        }
        await new Promise((r) => setTimeout(r, 5))
      }
      addon.close(fd)
    },
  }
}
