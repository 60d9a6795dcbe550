import { execFile } from 'node:child_process'

/**
 * Transparent TCP egress, odyn's half of the kernel setup (enclaver #69). The egress plug-in runs
 * the listener; this installs what sends the app's direct connections to it:
 *
 *   iptables -t nat -A OUTPUT -p tcp ! -d 127.0.0.0/8 -j REDIRECT --to-ports <port>
 *
 * plus, when the network has no IPv4 default route (an enclave has only `lo`), a default route
 * through `lo` (`ip -4 route add default dev lo src 127.0.0.1`): without a route, connect() fails
 * with ENETUNREACH before the OUTPUT chain sees the packet. IPv4 only: IPv6 destinations keep
 * having no route (ENETUNREACH), so they fail closed rather than bypass anything.
 */

/** The REDIRECT rule's match and target, after `-A`/`-D OUTPUT`. */
export function redirectRule(port: number): string[] {
  return ['-p', 'tcp', '!', '-d', '127.0.0.0/8', '-j', 'REDIRECT', '--to-ports', String(port)]
}

const ROUTE = ['default', 'dev', 'lo', 'src', '127.0.0.1']

/** Which distribution package ships iptables, for the error message. */
const IPTABLES_PACKAGES = 'Debian/Ubuntu/Alpine: the "iptables" package; Amazon Linux/Fedora: "iptables-nft"'

export interface RedirectOptions {
  /** The transparent listener's port on 127.0.0.1. */
  readonly port: number
  /** The iptables executable. @default 'iptables' (looked up on PATH) */
  readonly iptables?: string
  /** The iproute2 executable. @default 'ip' */
  readonly ip?: string
  /** Give up on one command after this long, ms. @default 10000 */
  readonly timeoutMs?: number
}

/** An installed redirect; `remove()` undoes exactly what was added (idempotent). */
export interface InstalledRedirect {
  readonly rule: readonly string[]
  /** true when odyn added the default route through lo (there was none). */
  readonly addedRoute: boolean
  remove(): Promise<void>
}

/** The redirect could not be installed or removed; `message` says what to change. */
export class TransparentEgressSetupError extends Error {
  readonly code = 'ENCLAVER_TRANSPARENT_EGRESS_SETUP'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TransparentEgressSetupError'
  }
}

/**
 * Whether odyn owns the network stack it runs in, and so may change its firewall. True in a real
 * enclave (no vsock dev mode); false under `enclaver run --simulate`, where the "enclave" is a
 * process on the host and a REDIRECT rule would capture the host's own traffic. `override` is
 * odyn's --private-network flag: a network namespace that stands in for an enclave (tests).
 */
export function ownsNetwork(dev: unknown, override?: boolean): boolean {
  return override ?? (dev === false || dev === undefined)
}

interface RunResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly missing: boolean
}

function run(file: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code
      resolve({
        code: error ? (typeof code === 'number' ? code : null) : 0,
        stdout,
        stderr: stderr.trim() || (error ? error.message : ''),
        missing: code === 'ENOENT' || code === 'EACCES',
      })
    })
  })
}

/**
 * Installs the REDIRECT rule (and the route it needs) for the transparent listener on `port`.
 * Throws TransparentEgressSetupError naming the fix when iptables is missing or refuses.
 */
export async function installTransparentRedirect(options: RedirectOptions): Promise<InstalledRedirect> {
  const port = options.port
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new TransparentEgressSetupError(`the transparent listener port must be 1-65535, got ${port}`)
  const iptables = options.iptables ?? 'iptables'
  const ip = options.ip ?? 'ip'
  const timeoutMs = options.timeoutMs ?? 10_000
  const rule = redirectRule(port)

  const added = await run(iptables, ['-t', 'nat', '-A', 'OUTPUT', ...rule], timeoutMs)
  if (added.missing)
    throw new TransparentEgressSetupError(
      `egress.transparent needs iptables, and "${iptables}" could not be run: add iptables to the app image (${IPTABLES_PACKAGES}), give odyn --iptables <path>, or set egress.transparent: false`,
    )
  if (added.code !== 0)
    throw new TransparentEgressSetupError(
      `egress.transparent: "${iptables} -t nat -A OUTPUT ${rule.join(' ')}" failed (exit ${added.code}): ${added.stderr}. odyn must run as root in a kernel with netfilter NAT (iptable_nat or nf_tables nat); otherwise set egress.transparent: false`,
    )
  const removeRule = async (): Promise<string | undefined> => {
    const r = await run(iptables, ['-t', 'nat', '-D', 'OUTPUT', ...rule], timeoutMs)
    return r.code === 0 ? undefined : `removing the REDIRECT rule failed: ${r.stderr}`
  }

  let addedRoute = false
  const routes = await run(ip, ['-4', 'route', 'show', 'default'], timeoutMs)
  if (routes.code !== 0 || routes.stdout.trim() === '') {
    const route = await run(ip, ['-4', 'route', 'add', ...ROUTE], timeoutMs)
    if (route.code !== 0) {
      await removeRule()
      throw new TransparentEgressSetupError(
        `egress.transparent: "${ip} -4 route add ${ROUTE.join(' ')}" failed: ${route.stderr}. Without a route the app's connections fail before the REDIRECT rule; add iproute2 to the app image (Amazon Linux/Fedora: "iproute"), or set egress.transparent: false`,
      )
    }
    addedRoute = true
  }

  let removing: Promise<void> | undefined
  return {
    rule,
    addedRoute,
    remove() {
      removing ??= (async () => {
        const problems = [await removeRule()]
        if (addedRoute) {
          const r = await run(ip, ['-4', 'route', 'del', ...ROUTE], timeoutMs)
          if (r.code !== 0) problems.push(`removing the default route through lo failed: ${r.stderr}`)
        }
        const failed = problems.filter((p): p is string => p !== undefined)
        if (failed.length > 0) throw new TransparentEgressSetupError(failed.join('; '))
      })()
      return removing
    },
  }
}
