import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { constants as osConstants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { VsockUnavailableError } from './errors.js'

/**
 * The addon (native/vsock.c), loaded lazily the node-gyp-build way (build/Release, then
 * prebuilds/<platform>-<arch>/). Every function returns a non-negative result or -errno; it never
 * throws for a failed system call. A failed load is remembered and reported as VsockUnavailableError.
 */
export interface VsockAddon {
  /** socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC): fd or -errno. */
  socket(): number
  bind(fd: number, cid: number, port: number): number
  listen(fd: number, backlog: number): number
  /** Non-blocking connect: 0, -EINPROGRESS, or -errno. */
  connect(fd: number, cid: number, port: number): number
  /**
   * On the event loop (a uv_poll_t, no thread): waits for the connecting fd to become writable, then
   * calls back with 0 or -errno (SO_ERROR). Returns a handle for cancelWait, or -errno. The callback
   * runs once the poll is closed: only then may the fd be closed.
   */
  waitConnected(fd: number, callback: (result: number) => void): WaitHandle | number
  /** Ends a wait early: its callback gets -ECANCELED. A no-op once the wait has called back. */
  cancelWait(handle: WaitHandle): number
  /** [cid, port] or -errno. */
  getsockname(fd: number): [number, number] | number
  getpeername(fd: number): [number, number] | number
  /** Socket family of the fd (AF_INET = 2, AF_INET6 = 10, AF_VSOCK = 40, ...) or -errno. */
  family(fd: number): number
  /** IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock: cid or -errno. */
  localCid(): number
  /** SO_ORIGINAL_DST (family 4) or IP6T_SO_ORIGINAL_DST (family 6): [address bytes, port] or -errno. */
  originalDst(fd: number, family: 4 | 6): [Buffer, number] | number
  /** SO_VM_SOCKETS_CONNECT_TIMEOUT in ms: 0 or -errno. */
  setConnectTimeout(fd: number, timeoutMs: number): number
  close(fd: number): number
}

/** An in-progress waitConnected (an opaque N-API external). */
export type WaitHandle = object & { readonly __waitHandle: unique symbol }

const FIX = 'use dev mode: set ENCLAVE_VSOCK_DEV_DIR or pass { dev: { dir } }'

function packageRoot(): string {
  // src/ or dist/ sit one level below the package root.
  const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url))
  return join(here, '..')
}

let loaded: { addon: VsockAddon } | { error: VsockUnavailableError } | undefined

type AddonLoader = (packageRoot: string) => VsockAddon

const nodeGypBuildLoader: AddonLoader = (root) => {
  const require = createRequire(join(root, 'package.json'))
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => VsockAddon
  return nodeGypBuild(root)
}
let loader: AddonLoader = nodeGypBuildLoader

/**
 * For tests (not exported from the package): loads the addon with `next` from now on, forgetting
 * any addon already loaded. Returns a function that restores the real loader.
 */
export function setAddonLoader(next: AddonLoader): () => void {
  loader = next
  loaded = undefined
  return () => {
    loader = nodeGypBuildLoader
    loaded = undefined
  }
}

/** The addon, or a VsockUnavailableError naming why it cannot be used and what to do instead. */
export function loadAddon(): VsockAddon {
  if (!loaded) loaded = tryLoad()
  if ('error' in loaded) throw loaded.error
  return loaded.addon
}

function tryLoad(): { addon: VsockAddon } | { error: VsockUnavailableError } {
  if (process.platform !== 'linux') {
    return {
      error: new VsockUnavailableError(
        `AF_VSOCK is only supported on Linux (this is ${process.platform}); ${FIX}`,
      ),
    }
  }
  const root = packageRoot()
  try {
    return { addon: loader(root) }
  } catch (cause) {
    return {
      error: new VsockUnavailableError(
        `the vsock addon could not be loaded from ${root} (${(cause as Error).message.split('\n')[0]}); ` +
          `rebuild it with "npx node-gyp rebuild" in that folder, or ${FIX}`,
        { cause },
      ),
    }
  }
}

const ERRNO_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(Object.entries(osConstants.errno).map(([name, value]) => [value, name])),
)

/** errno name for a -errno result, e.g. -19 → ENODEV. */
export function errnoName(result: number): string {
  return ERRNO_NAMES[-result] ?? `errno ${-result}`
}

/** A Node-style system error for a -errno result, to serve as a typed error's cause. */
export function systemErrorFor(result: number, syscall: string): NodeJS.ErrnoException {
  const code = errnoName(result)
  const err: NodeJS.ErrnoException = new Error(`${syscall} failed: ${code}`)
  err.code = code
  err.errno = result
  err.syscall = syscall
  return err
}

/** The VsockUnavailableError for a socket() result that means "this kernel has no AF_VSOCK", else undefined. */
export function unavailableFor(result: number): VsockUnavailableError | undefined {
  const code = errnoName(result)
  if (code !== 'EAFNOSUPPORT' && code !== 'EPROTONOSUPPORT' && code !== 'ESOCKTNOSUPPORT') return undefined
  const device = existsSync('/dev/vsock') ? '/dev/vsock exists' : '/dev/vsock is missing'
  return new VsockUnavailableError(
    `this kernel has no AF_VSOCK support (socket: ${code}; ${device}); ${FIX}`,
    {
      cause: systemErrorFor(result, 'socket'),
      systemCode: code,
    },
  )
}

/** Kernel socket family numbers the addon reports. */
export const AF_INET = 2
export const AF_INET6 = 10
export const AF_VSOCK = 40
