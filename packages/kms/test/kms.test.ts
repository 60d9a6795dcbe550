import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto'
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { Agent, request as httpsRequest } from 'node:https'
import { connect as netConnect } from 'node:net'
import {
  DecryptCommand,
  DeriveSharedSecretCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyPairCommand,
  GenerateRandomCommand,
  GetPublicKeyCommand,
  KMSClient,
} from '@aws-sdk/client-kms'
import { createDevNsm, type DevNsm } from '@enclave/attestation'
import { makeTempDir } from '@enclave/test-helpers'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  attachRecipient,
  createEgressConnector,
  createRecipient,
  type KmsProxy,
  type Recipient,
  startKmsProxy,
  staticCredentials,
} from '../src/index.js'
import { type FakeKms, startFakeKms } from './fake-kms.js'

const CREDS = { accessKeyId: 'AKIAENCLAVETEST', secretAccessKey: 'host-secret-key', sessionToken: 'session' }
const PCR0 = 'ab'.repeat(48)
const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('hex')

let dir: ReturnType<typeof makeTempDir>
let nsm: DevNsm
let kms: FakeKms
let recipient: Recipient

beforeAll(async () => {
  dir = makeTempDir('kms-nsm-')
  nsm = await createDevNsm({ dir: dir.path, pcrs: { 0: PCR0, 1: 'cd'.repeat(48), 2: 'ef'.repeat(48) } })
  kms = await startFakeKms({ root: nsm.rootCertificatePem, credentials: CREDS, pcrs: { 0: PCR0 } })
  recipient = createRecipient({ nsm })
})

afterAll(async () => {
  await kms?.close()
  await nsm?.close()
  dir?.remove()
})

function sdkClient(endpoint: string, credentials = CREDS, ca?: string): KMSClient {
  return new KMSClient({
    region: 'us-east-1',
    endpoint,
    credentials,
    maxAttempts: 1,
    ...(ca ? { requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca }) }) } : {}),
  })
}

/** Runs the five attesting actions through `client` and checks each plain field against KMS's own view. */
async function exerciseAllActions(client: KMSClient, direct: KMSClient): Promise<void> {
  const secret = new TextEncoder().encode('database password')
  const { CiphertextBlob } = await client.send(new EncryptCommand({ KeyId: 'key-1', Plaintext: secret }))
  const decrypted = await client.send(new DecryptCommand({ CiphertextBlob }))
  expect(hex(decrypted.Plaintext)).toBe(hex(secret))
  expect(decrypted.CiphertextForRecipient).toBeUndefined()
  expect(kms.requests.at(-1)?.body.Recipient).toMatchObject({ KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' })

  const dataKey = await client.send(new GenerateDataKeyCommand({ KeyId: 'key-1', KeySpec: 'AES_256' }))
  expect(dataKey.Plaintext?.length).toBe(32)
  const again = await direct.send(new DecryptCommand({ CiphertextBlob: dataKey.CiphertextBlob }))
  expect(hex(again.Plaintext)).toBe(hex(dataKey.Plaintext))

  const pair = await client.send(
    new GenerateDataKeyPairCommand({ KeyId: 'key-1', KeyPairSpec: 'ECC_NIST_P256' }),
  )
  const privateKey = createPrivateKey({
    key: Buffer.from(pair.PrivateKeyPlaintext!),
    format: 'der',
    type: 'pkcs8',
  })
  expect(hex(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }))).toBe(hex(pair.PublicKey))

  const ours = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const derived = await client.send(
    new DeriveSharedSecretCommand({
      KeyId: 'agree-1',
      KeyAgreementAlgorithm: 'ECDH',
      PublicKey: ours.publicKey.export({ format: 'der', type: 'spki' }),
    }),
  )
  const theirs = await direct.send(new GetPublicKeyCommand({ KeyId: 'agree-1' }))
  const expected = diffieHellman({
    privateKey: ours.privateKey,
    publicKey: createPublicKey({ key: Buffer.from(theirs.PublicKey!), format: 'der', type: 'spki' }),
  })
  expect(hex(derived.SharedSecret)).toBe(hex(expected))

  const random = await client.send(new GenerateRandomCommand({ NumberOfBytes: 64 }))
  expect(random.Plaintext?.length).toBe(64)
  expect(kms.requests.at(-1)?.body.Recipient).toBeDefined()
}

describe('@aws-sdk/client-kms with attachRecipient', () => {
  it('Decrypt, GenerateDataKey, GenerateDataKeyPair, DeriveSharedSecret and GenerateRandom come back decrypted', async () => {
    const client = sdkClient(kms.url, CREDS, kms.caPem)
    const direct = sdkClient(kms.url, CREDS, kms.caPem)
    const detach = attachRecipient(client, recipient)
    await exerciseAllActions(client, direct)
    // Encrypt is not an attesting action: no Recipient was added to it.
    expect(kms.requests.find((r) => r.action === 'Encrypt')?.body.Recipient).toBeUndefined()

    detach()
    const plain = await client.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))
    expect(kms.requests.at(-1)?.body.Recipient).toBeUndefined()
    expect(plain.Plaintext?.length).toBe(8)
  })

  it('a document whose PCR0 differs from the key policy is refused by KMS', async () => {
    // Same dev CA (so the chain verifies), another image: only the PCR condition fails.
    const other = await createDevNsm({ dir: dir.path, pcrs: { 0: '11'.repeat(48) } })
    const client = sdkClient(kms.url, CREDS, kms.caPem)
    attachRecipient(client, createRecipient({ nsm: other }))
    await expect(client.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))).rejects.toMatchObject({
      name: 'AccessDeniedException',
      message: expect.stringMatching(/pcr-mismatch/),
    })
    await other.close()
  })

  it('a response without CiphertextForRecipient is a MissingCiphertextError', async () => {
    const client = sdkClient(kms.url, CREDS, kms.caPem)
    // An endpoint that ignores Recipient: simulated by stripping it again after ours added it.
    attachRecipient(client, recipient)
    client.middlewareStack.add(
      ((next: (a: { input: Record<string, unknown> }) => Promise<unknown>) =>
        (args: { input: Record<string, unknown> }) => {
          const { Recipient: _r, ...input } = args.input
          return next({ ...args, input })
        }) as never,
      { step: 'initialize', name: 'stripRecipient', priority: 'low' },
    )
    await expect(client.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))).rejects.toMatchObject({
      code: 'ENCLAVE_KMS_MISSING_CIPHERTEXT',
    })
  })
})

describe('KMS proxy (any AWS SDK, dummy credentials)', () => {
  let proxy: KmsProxy

  beforeAll(async () => {
    proxy = await startKmsProxy(
      { port: 0, endpoints: { 'us-east-1': kms.url }, ca: kms.caPem },
      { recipient, credentials: staticCredentials(CREDS) },
    )
  })
  afterAll(() => proxy?.close())

  it('inserts the Recipient, re-signs with the enclave credentials and returns plain fields', async () => {
    const app = sdkClient(proxy.url, { accessKeyId: 'dummy', secretAccessKey: 'dummy', sessionToken: 'x' })
    await exerciseAllActions(app, sdkClient(kms.url, CREDS, kms.caPem))
  })

  it('passes KMS errors through verbatim', async () => {
    const app = sdkClient(proxy.url, { accessKeyId: 'dummy', secretAccessKey: 'dummy', sessionToken: 'x' })
    await expect(app.send(new DecryptCommand({ CiphertextBlob: new Uint8Array(40) }))).rejects.toMatchObject({
      name: 'InvalidCiphertextException',
    })
  })

  it('regression: a chunked upstream answer is re-framed, never Content-Length next to Transfer-Encoding', async () => {
    /** One raw HTTP/1.1 exchange; returns the head lines and the body exactly as the proxy sent them. */
    const rawPost = (target: string, body: string) =>
      new Promise<{ status: string; headers: [string, string][]; body: string }>((resolve, reject) => {
        const socket = netConnect(proxy.port, '127.0.0.1')
        const chunks: Buffer[] = []
        socket.on('data', (c: Buffer) => chunks.push(c))
        socket.on('error', reject)
        socket.on('end', () => {
          const text = Buffer.concat(chunks).toString('latin1')
          const split = text.indexOf('\r\n\r\n')
          const [status = '', ...lines] = text.slice(0, split).split('\r\n')
          resolve({
            status,
            headers: lines.map((l) => [
              l.slice(0, l.indexOf(':')).toLowerCase(),
              l.slice(l.indexOf(':') + 1).trim(),
            ]),
            body: text.slice(split + 4),
          })
        })
        socket.write(
          `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Amz-Target: TrentService.${target}\r\n` +
            'Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00\r\n' +
            `Content-Type: application/x-amz-json-1.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        )
      })
    kms.hopByHop = true
    try {
      // The fake really answers chunked, with a Connection-named header (sanity check of the fixture).
      const upstreamHeaders = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
        const req = httpsRequest(kms.url, { method: 'POST', ca: kms.caPem }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.headers))
        })
        req.on('error', reject)
        req.end('{}')
      })
      expect(upstreamHeaders['transfer-encoding']).toBe('chunked')
      expect(upstreamHeaders['x-amzn-query-error']).toBeDefined()
      for (const [target, body, status] of [
        ['GenerateRandom', '{"NumberOfBytes":8}', '200'],
        ['Decrypt', `{"CiphertextBlob":"${Buffer.alloc(40).toString('base64')}"}`, '400'],
      ] as const) {
        const reply = await rawPost(target, body)
        expect(reply.status).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `))
        const names = reply.headers.map(([n]) => n)
        expect(names).toContain('content-length')
        expect(names).not.toContain('transfer-encoding')
        expect(names).not.toContain('x-amzn-query-error')
        expect(names.filter((n) => n === 'content-length')).toHaveLength(1)
        expect(reply.headers.find(([n]) => n === 'keep-alive')?.[1]).not.toBe('timeout=61')
        const length = Number(reply.headers.find(([n]) => n === 'content-length')?.[1])
        expect(Buffer.byteLength(reply.body, 'latin1')).toBe(length)
        expect(() => JSON.parse(reply.body)).not.toThrow()
      }
      const app = sdkClient(proxy.url, { accessKeyId: 'dummy', secretAccessKey: 'dummy', sessionToken: 'x' })
      const random = await app.send(new GenerateRandomCommand({ NumberOfBytes: 24 }))
      expect(random.Plaintext?.length).toBe(24)
      const secret = new TextEncoder().encode('through a chunked upstream')
      const { CiphertextBlob } = await app.send(new EncryptCommand({ KeyId: 'key-1', Plaintext: secret }))
      expect(hex((await app.send(new DecryptCommand({ CiphertextBlob }))).Plaintext)).toBe(hex(secret))
    } finally {
      kms.hopByHop = false
    }
  })

  it('answers 502 ENCLAVE_KMS_MISSING_CIPHERTEXT when the endpoint ignores the Recipient', async () => {
    const app = sdkClient(proxy.url, { accessKeyId: 'dummy', secretAccessKey: 'dummy', sessionToken: 'x' })
    kms.ignoreRecipient = true
    try {
      await expect(app.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))).rejects.toMatchObject({
        name: 'ENCLAVE_KMS_MISSING_CIPHERTEXT',
        $metadata: { httpStatusCode: 502 },
      })
    } finally {
      kms.ignoreRecipient = false
    }
  })

  it('refuses unsigned requests, other services, hostile regions and oversized bodies with a JSON code', async () => {
    const post = (headers: Record<string, string>, body = '{}') =>
      fetch(proxy.url, {
        method: 'POST',
        headers: { 'x-amz-target': 'TrentService.GenerateRandom', ...headers },
        body,
      })
    const scope = (region: string, service = 'kms') =>
      `AWS4-HMAC-SHA256 Credential=AKID/20260101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=00`
    const cases: [Record<string, string>, string, RegExp][] = [
      [{}, '{}', /not SigV4-signed/],
      [{ authorization: scope('us-east-1', 's3') }, '{}', /service s3/],
      [{ authorization: scope('evil.example.com#') }, '{}', /not SigV4-signed|region/],
      [{ authorization: scope('us-east-1') }, '[1]', /JSON object/],
      [{ authorization: scope('us-east-1') }, 'x'.repeat(1024 * 1024 + 1), /maxBodyBytes/],
      [{ authorization: scope('us-east-1'), 'x-amz-target': 'Other.Thing' }, '{}', /TrentService/],
    ]
    for (const [headers, body, message] of cases) {
      const res = await post(headers, body)
      expect(res.status).toBe(400)
      const json = (await res.json()) as { code: string; message: string }
      expect(json.code).toBe('ENCLAVE_KMS_BAD_REQUEST')
      expect(json.message).toMatch(message)
    }
  })

  it('fuzz: hostile targets, scopes and bodies get a JSON answer below 500, and the proxy stays up', async () => {
    const scope = `AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00`
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom(
            'TrentService.Decrypt',
            'TrentService.GenerateRandom',
            'trentservice.generatedatakey',
          ),
          fc.string({ maxLength: 40 }),
        ),
        fc.oneof(fc.constant(scope), fc.string({ maxLength: 120 })),
        fc.oneof(fc.json(), fc.string({ maxLength: 200 })),
        async (target, authorization, body) => {
          const headers = { 'x-amz-target': target, authorization }
          // Strings a client cannot send as header values are not part of the attack surface.
          if (Object.values(headers).some((v) => /[^\t\x20-\x7e]/.test(v) || v !== v.trim())) return
          const res = await fetch(proxy.url, { method: 'POST', headers, body })
          expect(res.status).toBeLessThan(500)
          if (res.status !== 200)
            expect(typeof ((await res.json()) as { __type: string }).__type).toBe('string')
          else await res.arrayBuffer()
        },
      ),
      { numRuns: 120 },
    )
    const app = sdkClient(proxy.url, { accessKeyId: 'dummy', secretAccessKey: 'dummy', sessionToken: 'x' })
    expect((await app.send(new GenerateRandomCommand({ NumberOfBytes: 4 }))).Plaintext?.length).toBe(4)
  })

  it('reaches KMS through an HTTP CONNECT egress proxy', async () => {
    const seen: string[] = []
    const egress: Server = createHttpServer()
    const tunnels = new Set<{ destroy(): void }>()
    egress.on('connect', (req, socket, head) => {
      seen.push(req.url ?? '')
      tunnels.add(socket)
      const [host, port] = (req.url ?? '').split(':')
      const upstream = netConnect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        if (head.length) upstream.write(head)
        upstream.pipe(socket)
        socket.pipe(upstream)
      })
      tunnels.add(upstream)
      upstream.on('error', () => socket.destroy())
      socket.on('error', () => upstream.destroy())
    })
    await new Promise<void>((resolve) => egress.listen(0, '127.0.0.1', resolve))
    const egressPort = (egress.address() as { port: number }).port
    const tunnelled = await startKmsProxy(
      {
        port: 0,
        endpoints: { 'eu-west-1': kms.url },
        ca: kms.caPem,
        connect: createEgressConnector(`http://127.0.0.1:${egressPort}`),
      },
      { recipient, credentials: staticCredentials(CREDS) },
    )
    try {
      const app = new KMSClient({
        region: 'eu-west-1',
        endpoint: tunnelled.url,
        credentials: { accessKeyId: 'dummy', secretAccessKey: 'dummy' },
        maxAttempts: 1,
      })
      const random = await app.send(new GenerateRandomCommand({ NumberOfBytes: 16 }))
      expect(random.Plaintext?.length).toBe(16)
      expect(seen).toEqual([new URL(kms.url).host])
    } finally {
      await tunnelled.close()
      for (const socket of tunnels) socket.destroy()
      await new Promise((resolve) => egress.close(resolve))
    }
  })

  it('answers 500 with ENCLAVE_KMS_CREDENTIALS_FAILED when the provider fails', async () => {
    const failing = await startKmsProxy(
      { port: 0, endpoints: { 'us-east-1': kms.url }, ca: kms.caPem },
      {
        recipient,
        credentials: async () => {
          throw new Error('IMDS unreachable')
        },
      },
    )
    try {
      const app = sdkClient(failing.url, {
        accessKeyId: 'dummy',
        secretAccessKey: 'dummy',
        sessionToken: 'x',
      })
      await expect(app.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))).rejects.toMatchObject({
        name: 'ENCLAVE_KMS_CREDENTIALS_FAILED',
        message: expect.stringMatching(/IMDS unreachable/),
      })
    } finally {
      await failing.close()
    }
  })
})
