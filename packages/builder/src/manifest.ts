import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  type Scalar,
  type YAMLMap,
} from 'yaml'
import { ManifestInvalidError, type ManifestIssue, ManifestUnreadableError } from './errors.js'

/** enclaver.yaml, as enclaver (upstream main) defines it. Keys keep their YAML spelling. */
export interface Manifest {
  readonly version: string
  readonly name: string
  /** Tag of the release (sleeve) image. */
  readonly target: string
  readonly sources: { readonly app: string; readonly odyn?: string; readonly sleeve?: string }
  /** Paths resolved against the manifest's folder. */
  readonly signature?: { readonly certificate: string; readonly key: string }
  readonly defaults: { readonly cpu_count: number; readonly memory_mb: number }
  readonly ingress?: readonly IngressEntry[]
  readonly egress?: {
    readonly proxy_port: number
    readonly allow?: readonly string[]
    readonly deny?: readonly string[]
    /**
     * Our addition (enclaver #69): also carry the app's direct outbound TCP (no proxy settings)
     * through egress, under the same allow/deny policy. odyn redirects it with iptables in a real
     * enclave only. @default false
     */
    readonly transparent: boolean
    /** Port of the in-enclave transparent listener (127.0.0.1). @default 10001 */
    readonly transparent_port: number
  }
  readonly kms_proxy?: { readonly listen_port: number; readonly endpoints?: Readonly<Record<string, string>> }
  readonly api?: { readonly listen_port: number }
  readonly spire?: {
    readonly server_addr?: string
    readonly ca_cert?: string
    readonly trust_domain?: string
    readonly svid_dir?: string
    readonly workload_api_addr: string
  }
}

export interface IngressEntry {
  readonly listen_port: number
  /** cert_file + key_file, or attested: true (checked by @enclave/ingress when odyn starts). */
  readonly tls?: {
    readonly key_file?: string
    readonly cert_file?: string
    /** mTLS: clients must present a certificate from this CA. */
    readonly client_ca_file?: string
    /** A certificate made in the enclave that carries its attestation document. */
    readonly attested?: boolean
    readonly dns_names?: readonly string[]
  }
  /** PROXY protocol v2 towards the app (client addresses). */
  readonly proxy_protocol?: boolean
}

/** Defaults enclaver applies when a key is absent. */
export const MANIFEST_DEFAULTS = Object.freeze({
  cpu_count: 2,
  memory_mb: 4096,
  proxy_port: 10000,
  transparent: false,
  transparent_port: 10001,
  workload_api_addr: '127.0.0.1:5000',
})

// A tiny schema language: enough for enclaver's types, and every check knows its node's position.
type Spec =
  | { kind: 'string' }
  | { kind: 'bool' }
  | { kind: 'int'; min: number; max: number; label: string }
  | { kind: 'list'; of: Spec }
  | { kind: 'dict'; of: Spec }
  | {
      kind: 'object'
      fields: Readonly<Record<string, { spec: Spec; required?: boolean; default?: unknown }>>
    }

const str: Spec = { kind: 'string' }
const bool: Spec = { kind: 'bool' }
const u16: Spec = { kind: 'int', min: 0, max: 65535, label: 'u16 (0-65535)' }
const i32: Spec = { kind: 'int', min: -2147483648, max: 2147483647, label: 'i32' }
const obj = (fields: Extract<Spec, { kind: 'object' }>['fields']): Spec => ({ kind: 'object', fields })

const MANIFEST_SPEC = obj({
  version: { spec: str, required: true },
  name: { spec: str, required: true },
  target: { spec: str, required: true },
  sources: {
    spec: obj({ app: { spec: str, required: true }, odyn: { spec: str }, sleeve: { spec: str } }),
    required: true,
  },
  signature: {
    spec: obj({ certificate: { spec: str, required: true }, key: { spec: str, required: true } }),
  },
  defaults: {
    spec: obj({
      cpu_count: { spec: i32, default: MANIFEST_DEFAULTS.cpu_count },
      memory_mb: { spec: i32, default: MANIFEST_DEFAULTS.memory_mb },
    }),
    default: {},
  },
  ingress: {
    spec: {
      kind: 'list',
      of: obj({
        listen_port: { spec: u16, required: true },
        tls: {
          spec: obj({
            key_file: { spec: str },
            cert_file: { spec: str },
            client_ca_file: { spec: str },
            attested: { spec: bool },
            dns_names: { spec: { kind: 'list', of: str } },
          }),
        },
        proxy_protocol: { spec: bool },
      }),
    },
  },
  egress: {
    spec: obj({
      proxy_port: { spec: u16, default: MANIFEST_DEFAULTS.proxy_port },
      allow: { spec: { kind: 'list', of: str } },
      deny: { spec: { kind: 'list', of: str } },
      transparent: { spec: bool, default: MANIFEST_DEFAULTS.transparent },
      transparent_port: { spec: u16, default: MANIFEST_DEFAULTS.transparent_port },
    }),
  },
  kms_proxy: {
    spec: obj({ listen_port: { spec: u16, required: true }, endpoints: { spec: { kind: 'dict', of: str } } }),
  },
  api: { spec: obj({ listen_port: { spec: u16, required: true } }) },
  spire: {
    spec: obj({
      server_addr: { spec: str },
      ca_cert: { spec: str },
      trust_domain: { spec: str },
      svid_dir: { spec: str },
      workload_api_addr: { spec: str, default: MANIFEST_DEFAULTS.workload_api_addr },
    }),
  },
})

// Plain assignment of a YAML key such as "__proto__" would change the object's prototype.
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
}

function defaultsOf(spec: Extract<Spec, { kind: 'object' }>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, field] of Object.entries(spec.fields)) {
    if (field.default !== undefined)
      out[key] = field.spec.kind === 'object' ? defaultsOf(field.spec) : field.default
  }
  return out
}

function describe(node: Node | null | undefined): string {
  if (node == null) return 'nothing'
  if (isMap(node)) return 'a mapping'
  if (isSeq(node)) return 'a list'
  if (isScalar(node)) {
    const v = node.value
    if (v === null) return 'null'
    if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
    return `${typeof v} ${String(v)}`
  }
  return 'an alias'
}

function expected(spec: Spec): string {
  switch (spec.kind) {
    case 'string':
      return 'a string'
    case 'bool':
      return 'a boolean'
    case 'int':
      return `an integer ${spec.label}`
    case 'list':
      return `a list of ${expected(spec.of).replace(/^an? /, '')}s`
    case 'dict':
      return `a mapping of string to ${expected(spec.of).replace(/^an? /, '')}`
    case 'object':
      return `a mapping with keys ${Object.keys(spec.fields).join(', ')}`
  }
}

/**
 * Parses and validates an enclaver.yaml text. Every problem is collected (not just the first) and
 * reported with `file:line:column`. Unknown keys are errors at every level, as in enclaver (serde
 * deny_unknown_fields). Relative signature paths are resolved against `file`'s folder.
 */
export function parseManifest(text: string, file = 'enclaver.yaml'): Manifest {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false })
  const issues: ManifestIssue[] = []
  const at = (offset: number | undefined) => {
    const { line, col } = lineCounter.linePos(offset ?? 0)
    return { line, column: col }
  }
  for (const e of doc.errors) issues.push({ path: '', ...at(e.pos[0]), message: e.message.split('\n')[0]! })
  if (issues.length > 0) throw new ManifestInvalidError(file, issues)

  const fail = (path: string, node: Node | null | undefined, message: string, fallback?: number) => {
    issues.push({ path, ...at(node?.range?.[0] ?? fallback), message })
  }

  const check = (spec: Spec, node: Node | null | undefined, path: string): unknown => {
    if (isScalar(node) || node == null) {
      const value = (node as Scalar | null | undefined)?.value
      if (spec.kind === 'string' && typeof value === 'string') return value
      if (spec.kind === 'bool' && typeof value === 'boolean') return value
      if (spec.kind === 'int' && typeof value === 'number') {
        if (!Number.isInteger(value) || value < spec.min || value > spec.max) {
          fail(path, node, `expected ${expected(spec)}, got ${describe(node)}`)
          return undefined
        }
        return value
      }
      fail(path, node, `expected ${expected(spec)}, got ${describe(node)}`)
      return undefined
    }
    if (spec.kind === 'list') {
      if (!isSeq(node)) return void fail(path, node, `expected ${expected(spec)}, got ${describe(node)}`)
      return node.items.map((item, i) => check(spec.of, item as Node, `${path}[${i}]`))
    }
    if (spec.kind === 'dict' || spec.kind === 'object') {
      if (!isMap(node)) return void fail(path, node, `expected ${expected(spec)}, got ${describe(node)}`)
      return checkMap(spec, node, path)
    }
    fail(path, node, `expected ${expected(spec)}, got ${describe(node)}`)
    return undefined
  }

  const checkMap = (spec: Extract<Spec, { kind: 'object' | 'dict' }>, node: YAMLMap, path: string) => {
    const out: Record<string, unknown> = {}
    const seen = new Set<string>()
    for (const pair of node.items) {
      const keyNode = pair.key as Node | null
      const key = isScalar(keyNode) ? keyNode.value : undefined
      const valueNode = pair.value as Node | null
      if (typeof key !== 'string') {
        fail(path, keyNode, `keys must be strings, got ${describe(keyNode)}`)
        continue
      }
      const keyPath = path ? `${path}.${key}` : key
      if (spec.kind === 'dict') {
        setOwn(out, key, check(spec.of, valueNode, keyPath))
        continue
      }
      const field = Object.hasOwn(spec.fields, key) ? spec.fields[key] : undefined
      if (!field) {
        fail(
          keyPath,
          keyNode,
          `unknown key "${key}" (expected one of: ${Object.keys(spec.fields).join(', ')})`,
        )
        continue
      }
      seen.add(key)
      // An explicit null (`egress:` with nothing under it) means "absent" for optional keys, as in serde.
      if (isScalar(valueNode) && valueNode.value === null && !field.required) continue
      out[key] = check(field.spec, valueNode ?? null, keyPath)
    }
    if (spec.kind === 'object') {
      for (const [key, field] of Object.entries(spec.fields)) {
        if (out[key] !== undefined) continue
        if (seen.has(key) && field.required) continue // already reported by check()
        if (field.required) {
          fail(path ? `${path}.${key}` : key, node, `missing required key "${key}" (${expected(field.spec)})`)
        } else if (field.default !== undefined) {
          out[key] = field.spec.kind === 'object' ? defaultsOf(field.spec) : field.default
        }
      }
    }
    return out
  }

  const root = doc.contents as Node | null
  if (root == null || !isMap(root)) {
    fail('', root, `expected the manifest to be ${expected(MANIFEST_SPEC)}, got ${describe(root)}`)
    throw new ManifestInvalidError(file, issues)
  }
  const value = checkMap(MANIFEST_SPEC as Extract<Spec, { kind: 'object' }>, root, '') as Record<
    string,
    unknown
  >
  if (issues.length === 0) checkEgress(value.egress as Manifest['egress'], root, fail)
  if (issues.length > 0) throw new ManifestInvalidError(file, issues)

  const manifest = value as unknown as { signature?: { certificate: string; key: string } }
  if (manifest.signature) {
    const base = dirname(resolve(file))
    manifest.signature = {
      certificate: resolve(base, manifest.signature.certificate),
      key: resolve(base, manifest.signature.key),
    }
  }
  return value as unknown as Manifest
}

/**
 * Rules across egress keys (types are already checked): transparent egress needs a policy that
 * allows something, and its listener cannot share the proxy's port.
 */
function checkEgress(
  egress: Manifest['egress'],
  root: YAMLMap,
  fail: (path: string, node: Node | null | undefined, message: string) => void,
): void {
  if (!egress?.transparent) return
  const block = root.get('egress', true) as unknown as YAMLMap
  const node = (key: string) => (block.get(key, true) as Node | undefined) ?? block
  if (!egress.allow || egress.allow.length === 0)
    fail(
      'egress.transparent',
      node('transparent'),
      'transparent egress needs egress.allow: without allow rules nothing is carried (add IP or CIDR rules, e.g. "203.0.113.0/24", or remove transparent)',
    )
  if (egress.transparent_port !== 0 && egress.transparent_port === egress.proxy_port)
    fail(
      'egress.transparent_port',
      // Point at the explicit key of the two (one of them is the default).
      (block.get('transparent_port', true) as Node | undefined) ?? node('proxy_port'),
      `egress.transparent_port and egress.proxy_port are both ${egress.proxy_port}: give transparent_port another port (default ${MANIFEST_DEFAULTS.transparent_port})`,
    )
}

/** Reads and validates a manifest file (`-` reads stdin, as `enclaver build -f -`). */
export async function loadManifest(
  file: string,
  { stdin }: { stdin?: NodeJS.ReadableStream } = {},
): Promise<{
  manifest: Manifest
  text: string
}> {
  let text: string
  try {
    if (file === '-') {
      const chunks: Buffer[] = []
      for await (const chunk of stdin ?? process.stdin) chunks.push(Buffer.from(chunk as Buffer))
      text = Buffer.concat(chunks).toString('utf8')
    } else {
      text = await readFile(file, 'utf8')
    }
  } catch (err) {
    throw new ManifestUnreadableError(file, err)
  }
  return { manifest: parseManifest(text, file === '-' ? '<stdin>' : file), text }
}
