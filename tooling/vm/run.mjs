#!/usr/bin/env node
// @ts-check
// `pnpm test:vm`: runs the guest suites (packages/*/test/guest/*.mjs, apps/*/test/guest/*.mjs and
// this tool's own) inside a QEMU guest running Debian's kernel with vsock_loopback, so AF_VSOCK is
// the real kernel interface between CID 1 endpoints. The guest's Node is the one running this
// script. Exit code: 0 when every suite passed (or, outside CI, when QEMU cannot run here), 1
// otherwise. Settings (environment):
//   ENCLAVE_VM_SUITES        comma-separated suite names or name prefixes to run (default: all)
//   ENCLAVE_VM_TIMEOUT_S     whole guest run, after which QEMU is killed (default 540)
//   ENCLAVE_VM_SUITE_TIMEOUT_S   one suite inside the guest (default 240)
//   ENCLAVE_VM_ACCEL         tcg (default), kvm, or auto (kvm if a probe guest boots with it
//                            within 20 s, else tcg); KVM guests hang on nested machines
//   ENCLAVE_VM_MEMORY_MIB    guest memory (default 1536; the initramfs lives in it)
//   ENCLAVE_VM_CPUS          guest vCPUs (default 2)
//   ENCLAVE_VM_EIF_TIMEOUT_S the EIF boot (vm/eif-boot), after which QEMU is killed (default 180)
//   ENCLAVE_VM_CONSOLE       all: echo every guest console line as it comes; failures (default):
//                            keep them and print the last 400 only when that boot fails, so a CI
//                            log's tail shows the failing test instead of a kernel's boot chatter
import { randomUUID } from 'node:crypto'
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cleanLine, judge, mergeVerdicts, parseLine } from './lib/console.mjs'
import { buildTestEif, EIF_SUITE, judgeEifBoot, makeTestImage } from './lib/eif-boot.mjs'
import {
  buildEifToolsArchive,
  buildInitramfs,
  buildProbeInitramfs,
  concatenate,
  PROBE_MARKER,
} from './lib/initramfs.mjs'
import { KernelUnavailableError, obtainKernel } from './lib/kernel.mjs'
import { discoverSuites, selectProject } from './lib/project.mjs'
import { boot, findOnPath } from './lib/qemu.mjs'

const vmDir = dirname(fileURLToPath(import.meta.url))
const root = resolve(vmDir, '../..')
const cacheDir = join(root, '.vm-cache')
const inCi = process.env.CI === 'true'
const started = Date.now()

/** @param {string} line */
const log = (line) => console.log(`vm: ${line}`)
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`

/**
 * @param {string} name @param {number} fallback @param {number} min @param {number} max
 */
function intSetting(name, fallback, min, max) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) {
    console.error(`vm: ${name}=${raw} is invalid: use a whole number from ${min} to ${max}`)
    process.exit(2)
  }
  return value
}

function settings() {
  const accel = process.env.ENCLAVE_VM_ACCEL || 'tcg'
  if (accel !== 'tcg' && accel !== 'kvm' && accel !== 'auto') {
    console.error(`vm: ENCLAVE_VM_ACCEL=${accel} is invalid: use tcg, kvm or auto`)
    process.exit(2)
  }
  return {
    accel: /** @type {'tcg' | 'kvm' | 'auto'} */ (accel),
    timeoutMs: intSetting('ENCLAVE_VM_TIMEOUT_S', 540, 10, 3600) * 1000,
    suiteTimeoutMs: intSetting('ENCLAVE_VM_SUITE_TIMEOUT_S', 240, 5, 3600) * 1000,
    memoryMiB: intSetting('ENCLAVE_VM_MEMORY_MIB', 1536, 512, 16384),
    cpus: intSetting('ENCLAVE_VM_CPUS', 2, 1, 16),
    eifTimeoutMs: intSetting('ENCLAVE_VM_EIF_TIMEOUT_S', 180, 10, 3600) * 1000,
    echoConsole: process.env.ENCLAVE_VM_CONSOLE === 'all',
    only: (process.env.ENCLAVE_VM_SUITES ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  }
}

/**
 * `auto`: KVM only if a minimal guest boots with it (on nested machines KVM guests hang at boot).
 * @param {{ qemu: string, kernel: string, busybox: string, staging: string }} input
 * @returns {Promise<'tcg' | 'kvm'>}
 */
async function probeAccel(input) {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK)
  } catch {
    log('accel auto: /dev/kvm is not usable, so tcg')
    return 'tcg'
  }
  const initrd = join(input.staging, 'probe.cpio')
  await buildProbeInitramfs(join(input.staging, 'probe'), initrd, input.busybox)
  const probeStarted = Date.now()
  let booted = false
  const result = await boot({
    qemu: input.qemu,
    kernel: input.kernel,
    initrd,
    accel: 'kvm',
    memoryMiB: 256,
    cpus: 1,
    timeoutMs: 20_000,
    onLine: (line) => {
      if (cleanLine(line).trim() === PROBE_MARKER) booted = true
    },
  })
  const seconds = ((Date.now() - probeStarted) / 1000).toFixed(1)
  const ok = booted && !result.timedOut
  log(`accel auto: a KVM guest ${ok ? 'booted' : 'did not boot'} (${seconds} s), so ${ok ? 'kvm' : 'tcg'}`)
  return ok ? 'kvm' : 'tcg'
}

/**
 * QEMU cannot run here. Outside CI that is a skip; in CI the bootstrap installs QEMU, so it is a
 * failure.
 * @param {string} reason
 */
function cannotRun(reason) {
  if (inCi) {
    log(`FAILED: cannot run the VM tests: ${reason} (CI=true, so this is not a skip)`)
    process.exit(1)
  }
  log(`skipped: ${reason}`)
  process.exit(0)
}

async function main() {
  const config = settings()
  log(`node ${process.version} (${process.execPath}) goes into the guest`)

  const qemu = findOnPath('qemu-system-x86_64')
  if (!qemu) cannotRun('qemu-system-x86_64 is not on PATH (Debian: apt-get install qemu-system-x86)')
  const busybox = findOnPath('busybox') ?? (existsSync('/bin/busybox') ? '/bin/busybox' : undefined)
  if (!busybox) cannotRun('busybox is not installed (Debian: apt-get install busybox-static)')
  for (const tool of ['cpio', 'ldd']) {
    if (!findOnPath(tool))
      cannotRun(`${tool} is not on PATH (Debian: apt-get install ${tool === 'ldd' ? 'libc-bin' : tool})`)
  }

  let kernel
  try {
    kernel = await obtainKernel(cacheDir, { log })
  } catch (error) {
    if (error instanceof KernelUnavailableError) return cannotRun(`no kernel: ${error.message}`)
    throw error
  }
  log(`kernel ${kernel.name}${kernel.cached ? ' (cached)' : ''}`)

  const selected = (/** @type {string} */ name) =>
    config.only.length === 0 || config.only.some((o) => name === o || name.startsWith(`${o}/`))
  const suites = discoverSuites(root, vmDir).filter((s) => selected(s.name))
  const eifBoot = selected(EIF_SUITE)
  if (suites.length === 0 && !eifBoot) {
    log(`no suite matches ENCLAVE_VM_SUITES=${config.only.join(',')}`)
    process.exit(1)
  }
  for (const suite of suites) {
    if (suite.cwd !== vmDir && !existsSync(join(suite.cwd, 'dist'))) {
      log(`warning: ${relative(root, suite.cwd)} has no dist/; run pnpm build first or ${suite.name} fails`)
    }
  }
  log(`suites: ${[...suites.map((s) => s.name), ...(eifBoot ? [EIF_SUITE] : [])].join(', ')}`)

  const staging = mkdtempSync(join(tmpdir(), 'enclave-vm-'))
  try {
    const common = {
      qemu: /** @type {string} */ (qemu),
      busybox: /** @type {string} */ (busybox),
      kernel,
      staging,
    }
    const accel =
      config.accel === 'auto' ? await probeAccel({ ...common, kernel: kernel.vmlinuz }) : config.accel
    /** @type {import('./lib/console.mjs').Verdict[]} */
    const verdicts = []
    if (suites.length > 0) verdicts.push(await runSuites(config, { ...common, accel, suites }))
    if (eifBoot) verdicts.push(await runEifBoot(config, { ...common, accel }))

    const verdict = mergeVerdicts(verdicts)
    console.log('')
    for (const name of verdict.passed) log(`ok    ${name}`)
    for (const { suite, reason } of verdict.failed) log(`FAIL  ${suite}: ${reason}`)
    for (const problem of verdict.problems) log(`PROBLEM ${problem}`)
    const ok = verdict.ok && verdict.problems.length === 0
    log(
      `${verdict.passed.length} passed, ${verdict.failed.length} failed${ok ? '' : ' - FAILED'} ` +
        `(node ${process.version}, ${elapsed()})`,
    )
    process.exitCode = ok ? 0 : 1
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
}

/**
 * @typedef {object} BootContext
 * @property {string} qemu
 * @property {string} busybox
 * @property {import('./lib/kernel.mjs').Kernel} kernel
 * @property {string} staging   a temporary folder this run owns
 * @property {'tcg' | 'kvm'} accel
 */

/**
 * QEMU's own failure (killed at the deadline, a non-zero exit) as problems of `verdict`.
 * @param {import('./lib/console.mjs').Verdict} verdict @param {string} what
 * @param {Awaited<ReturnType<typeof boot>>} result @param {number} timeoutMs
 */
function addQemuProblems(verdict, what, result, timeoutMs) {
  if (result.timedOut) verdict.problems.push(`${what}: QEMU was killed after ${timeoutMs / 1000} s`)
  else if (result.code !== 0) {
    verdict.problems.push(
      `${what}: QEMU exited with ${result.code ?? result.signal}: ${result.stderr.trim()}`,
    )
  }
  return verdict
}

/**
 * The first boot: the project and Node in the initramfs, the guest suites over real vsock.
 * @param {ReturnType<typeof settings>} config
 * @param {BootContext & { suites: import('./lib/project.mjs').Suite[] }} context
 */
async function runSuites(config, context) {
  const { suites, staging } = context
  const guestDirs = [...new Set(suites.map((s) => dirname(s.file)))]
  const initrd = join(staging, 'initramfs.cpio')
  const rootfs = join(staging, 'root')
  const built = await buildInitramfs({
    staging: rootfs,
    output: initrd,
    node: process.execPath,
    busybox: context.busybox,
    modules: context.kernel.modules,
    guestDir: join(vmDir, 'guest'),
    selection: selectProject(root, guestDirs),
    manifest: { suiteTimeoutMs: config.suiteTimeoutMs, suites },
  })
  log(`initramfs: ${(built.bytes / 2 ** 20).toFixed(0)} MiB, ${built.files} entries, ready at ${elapsed()}`)
  rmSync(rootfs, { recursive: true, force: true })

  log(`booting qemu (${context.accel}, ${config.memoryMiB} MiB, ${config.cpus} vCPU)`)
  /** @type {import('./lib/console.mjs').ConsoleEvent[]} */
  const events = []
  const transcript = consoleTranscript('  | ', config.echoConsole)
  const result = await boot({
    qemu: context.qemu,
    kernel: context.kernel.vmlinuz,
    initrd,
    accel: context.accel,
    memoryMiB: config.memoryMiB,
    cpus: config.cpus,
    timeoutMs: config.timeoutMs,
    onLine: (raw) => {
      const line = cleanLine(raw)
      transcript.add(line)
      const event = parseLine(line)
      if (event) {
        events.push(event)
        if (!config.echoConsole) console.log(`  | ${line}`) // progress: the protocol lines only
      }
    },
  })
  rmSync(initrd, { force: true })
  const verdict = addQemuProblems(
    judge(events, { expectedSuites: suites.map((s) => s.name) }),
    'suites boot',
    result,
    config.timeoutMs,
  )
  if (!verdict.ok || verdict.problems.length > 0) transcript.print('suites boot')
  return verdict
}

/**
 * The second boot: an EIF built by @enclave/builder from a small test image; its kernel, cmdline
 * and ramdisks (plus a busybox archive for the test init) boot, and the app's console lines are
 * checked (lib/eif-boot.mjs).
 * @param {ReturnType<typeof settings>} config
 * @param {BootContext} context
 */
async function runEifBoot(config, context) {
  const work = join(context.staging, 'eif')
  mkdirSync(work)
  const nonce = randomUUID()
  /** @type {import('./lib/eif-boot.mjs').TestEif} */
  let eif
  try {
    const image = makeTestImage(join(work, 'image'), context.busybox, nonce)
    eif = await buildTestEif({
      work,
      image,
      vmlinuz: context.kernel.vmlinuz,
      init: join(vmDir, 'guest/eif-init'),
    })
  } catch (error) {
    const hint = /** @type {any} */ (error)?.code === 'ERR_MODULE_NOT_FOUND' ? ' (run pnpm build first)' : ''
    const reason = `could not build the test EIF${hint}: ${/** @type {Error} */ (error)?.message ?? error}`
    return { ok: false, passed: [], failed: [{ suite: EIF_SUITE, reason }], problems: [] }
  }
  log(
    `test EIF: ${(eif.size / 2 ** 20).toFixed(1)} MiB, PCR0 ${eif.pcrs.PCR0?.slice(0, 16)}…, ready at ${elapsed()}`,
  )
  const tools = join(work, 'tools.cpio')
  await buildEifToolsArchive(join(work, 'tools'), tools, context.busybox)
  const initrd = join(work, 'initrd.cpio')
  await concatenate([...eif.ramdisks, tools], initrd)

  log(`booting the EIF's kernel and ramdisks (${context.accel}, cmdline "${eif.cmdline}")`)
  /** @type {string[]} */
  const lines = []
  const transcript = consoleTranscript('  eif| ', config.echoConsole)
  const result = await boot({
    qemu: context.qemu,
    kernel: eif.kernel,
    initrd,
    append: eif.cmdline,
    accel: context.accel,
    memoryMiB: EIF_MEMORY_MIB,
    cpus: 1,
    timeoutMs: config.eifTimeoutMs,
    onLine: (raw) => {
      const line = cleanLine(raw)
      transcript.add(line)
      if (lines.length < 10_000) lines.push(line)
    },
  })
  const verdict = addQemuProblems(judgeEifBoot(lines, { nonce }), 'EIF boot', result, config.eifTimeoutMs)
  if (!verdict.ok || verdict.problems.length > 0) transcript.print('EIF boot')
  return verdict
}

/** How many console lines a failed boot prints (its tail holds the failure). */
const TRANSCRIPT_LINES = 400

/**
 * A boot's console: echoed live when `echo` is set, otherwise kept (the last TRANSCRIPT_LINES)
 * and printed only if that boot fails.
 * @param {string} prefix @param {boolean} echo
 */
function consoleTranscript(prefix, echo) {
  /** @type {string[]} */
  const kept = []
  let dropped = 0
  return {
    /** @param {string} line */
    add(line) {
      if (echo) return void console.log(`${prefix}${line}`)
      kept.push(line)
      if (kept.length > TRANSCRIPT_LINES) {
        kept.shift()
        dropped += 1
      }
    },
    /** @param {string} what */
    print(what) {
      if (echo) return
      log(`${what} failed; its console${dropped ? ` (last ${kept.length} lines)` : ''}:`)
      for (const line of kept) console.log(`${prefix}${line}`)
    },
  }
}

// The test image is a few MiB; the initramfs and the kernel live in guest memory.
const EIF_MEMORY_MIB = 256

main().catch((error) => {
  console.error(`vm: FAILED: ${error?.stack ?? error}`)
  process.exit(1)
})
