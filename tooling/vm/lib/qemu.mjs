// @ts-check
// Boots the guest under QEMU with the serial console on stdout, and kills it at a deadline.
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { createLineSplitter } from './console.mjs'

/**
 * An executable on PATH, or undefined.
 * @param {string} name
 */
export function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return undefined
}

/**
 * @typedef {object} BootOptions
 * @property {string} qemu
 * @property {string} kernel
 * @property {string} initrd
 * @property {'tcg' | 'kvm'} accel
 * @property {number} memoryMiB
 * @property {number} cpus
 * @property {number} timeoutMs     QEMU is killed after this long
 * @property {(line: string) => void} onLine   each console line, as it arrives
 * @property {string} [append]      the kernel command line (default: serial console, quiet, no panic wait)
 */

/** The guest kernel's command line unless BootOptions.append says otherwise. */
export const DEFAULT_APPEND = 'console=ttyS0 panic=-1 quiet'

/**
 * The QEMU command line. KVM guests hang on these nested machines, so TCG is the default and KVM
 * is only used when asked for.
 * @param {BootOptions} options
 * @returns {string[]}
 */
export function qemuArgs(options) {
  return [
    '-accel',
    options.accel,
    // RDRAND lets the kernel seed its RNG at once: without it the guest's first getrandom() (Node's
    // startup) waits seconds for entropy under emulation. KVM passes the host CPU's features.
    ...(options.accel === 'tcg' ? ['-cpu', 'qemu64,+rdrand'] : []),
    '-m',
    String(options.memoryMiB),
    '-smp',
    String(options.cpus),
    '-kernel',
    options.kernel,
    '-initrd',
    options.initrd,
    '-append',
    options.append ?? DEFAULT_APPEND,
    // No default NIC, VGA or monitor: less to probe at boot, and stdin is never read.
    '-nodefaults',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
  ]
}

/**
 * @param {BootOptions} options
 * @returns {Promise<{ code: number | null, signal: string | null, timedOut: boolean, stderr: string }>}
 */
export function boot(options) {
  return new Promise((resolve, reject) => {
    const child = spawn(options.qemu, qemuArgs(options), { stdio: ['pipe', 'pipe', 'pipe'] })
    const splitter = createLineSplitter()
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk) => {
      for (const line of splitter.push(chunk)) options.onLine(line)
    })
    let stderr = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      if (stderr.length < 16 * 1024) stderr += chunk
    })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, options.timeoutMs)
    // Ctrl-C on run.mjs must not leave an emulator running on a shared machine.
    const stop = () => child.kill('SIGKILL')
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      process.removeListener('SIGINT', stop)
      process.removeListener('SIGTERM', stop)
      for (const line of splitter.end()) options.onLine(line)
      resolve({ code, signal, timedOut, stderr })
    })
  })
}
