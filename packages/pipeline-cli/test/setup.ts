import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { makeTempDir } from '@enclave/test-helpers'
import {
  type ClientOptions,
  createPipelineClient,
  createPipelineServer,
  generateIdentity,
  type Identity,
  type PipelineClient,
  type PipelineServer,
  pinnedKeyVerifier,
  type ServerOptions,
} from '../src/index.js'

export interface Fixture {
  dir: string
  root: string
  server: PipelineServer
  serverIdentity: Identity
  clientIdentity: Identity
  address: string
  client(overrides?: Partial<ClientOptions>): PipelineClient
  close(): Promise<void>
}

let identities: Promise<[Identity, Identity, Identity]> | undefined
/** Three identities (server, client, stranger), generated once per test file. */
export function testIdentities(): Promise<[Identity, Identity, Identity]> {
  identities ??= Promise.all([
    generateIdentity('server'),
    generateIdentity('client'),
    generateIdentity('stranger'),
  ])
  return identities
}

export async function startFixture(
  scheme: 'unix' | 'tcp',
  overrides: Partial<ServerOptions> = {},
): Promise<Fixture> {
  const temp = makeTempDir('pipeline-test-')
  const root = join(temp.path, 'root')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(root)
  const [serverIdentity, clientIdentity] = await testIdentities()
  const server = await createPipelineServer({
    address: scheme === 'unix' ? `unix://${join(temp.path, 's.sock')}` : 'tcp://127.0.0.1:0',
    identity: serverIdentity,
    authorizedKeys: [clientIdentity.fingerprint],
    roots: [root],
    allowExec: true,
    killGraceMs: 500,
    ...overrides,
  })
  const bound = server.address!
  const address =
    bound.scheme === 'unix'
      ? `unix://${bound.path}`
      : bound.scheme === 'tcp'
        ? `tcp://127.0.0.1:${bound.port}`
        : ''
  return {
    dir: temp.path,
    root,
    server,
    serverIdentity,
    clientIdentity,
    address,
    client: (more = {}) =>
      createPipelineClient({
        address,
        identity: clientIdentity,
        verifier: pinnedKeyVerifier([serverIdentity.fingerprint]),
        ...more,
      }),
    async close() {
      await server.close({ graceMs: 100 })
      temp.remove()
    },
  }
}

/** A writable that collects what is written to it. */
export function collector(): PassThrough & { text(): string } {
  const chunks: Buffer[] = []
  const stream = new PassThrough() as PassThrough & { text(): string }
  stream.on('data', (chunk: Buffer) => chunks.push(chunk))
  stream.text = () => Buffer.concat(chunks).toString('utf8')
  return stream
}
