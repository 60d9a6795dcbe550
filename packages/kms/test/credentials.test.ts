import { createServer, request, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { createImdsCredentialsProvider, staticCredentials } from '../src/index.js'

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

async function listen(server: Server): Promise<number> {
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

/** IMDSv2: a token from PUT, required on every GET. */
function fakeImds(expiration: () => string) {
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`)
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return void res.writeHead(400).end()
      return void res.end('TOKEN123')
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== 'TOKEN123') return void res.writeHead(401).end()
    if (req.url === '/latest/meta-data/iam/security-credentials/') return void res.end('enclave-role\n')
    if (req.url === '/latest/meta-data/iam/security-credentials/enclave-role') {
      return void res.end(
        JSON.stringify({
          Code: 'Success',
          AccessKeyId: 'ASIA1',
          SecretAccessKey: 'secret',
          Token: 'tok',
          Expiration: expiration(),
        }),
      )
    }
    res.writeHead(404).end()
  })
  return { server, hits }
}

describe('createImdsCredentialsProvider', () => {
  it('follows IMDSv2 and caches until near expiry', async () => {
    let expires = Date.now() + 3_600_000
    const imds = fakeImds(() => new Date(expires).toISOString())
    const port = await listen(imds.server)
    const provider = createImdsCredentialsProvider({ endpoint: `http://127.0.0.1:${port}` })
    const first = await provider()
    expect(first).toMatchObject({ accessKeyId: 'ASIA1', secretAccessKey: 'secret', sessionToken: 'tok' })
    await provider()
    expect(imds.hits.filter((h) => h.startsWith('PUT'))).toHaveLength(1)
    expires = Date.now() + 60_000 // inside the 5-minute refresh window
    await provider() // still the cached set (expires in an hour) → no call
    expect(imds.hits.filter((h) => h.startsWith('PUT'))).toHaveLength(1)
  })

  it('refreshes credentials that are about to expire', async () => {
    const imds = fakeImds(() => new Date(Date.now() + 60_000).toISOString())
    const port = await listen(imds.server)
    const provider = createImdsCredentialsProvider({ endpoint: `http://127.0.0.1:${port}` })
    await provider()
    await provider()
    expect(imds.hits.filter((h) => h.startsWith('PUT'))).toHaveLength(2)
  })

  it('goes through an absolute-URI HTTP proxy (the egress proxy)', async () => {
    const imds = fakeImds(() => new Date(Date.now() + 3_600_000).toISOString())
    const imdsPort = await listen(imds.server)
    const proxied: string[] = []
    const proxyPort = await listen(
      createServer((req, res) => {
        proxied.push(req.url ?? '')
        const target = new URL(req.url ?? '')
        const upstream = request(
          {
            host: target.hostname,
            port: target.port,
            path: target.pathname,
            method: req.method,
            headers: req.headers,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers)
            answer.pipe(res)
          },
        )
        req.pipe(upstream)
      }),
    )
    const provider = createImdsCredentialsProvider({
      endpoint: `http://127.0.0.1:${imdsPort}`,
      proxy: `http://127.0.0.1:${proxyPort}`,
    })
    expect((await provider()).accessKeyId).toBe('ASIA1')
    expect(proxied[0]).toBe(`http://127.0.0.1:${imdsPort}/latest/api/token`)
    expect(proxied).toHaveLength(3)
  })

  it('turns failures into ENCLAVE_KMS_CREDENTIALS_FAILED', async () => {
    const port = await listen(createServer((_req, res) => res.writeHead(403).end()))
    const provider = createImdsCredentialsProvider({ endpoint: `http://127.0.0.1:${port}` })
    await expect(provider()).rejects.toMatchObject({ code: 'ENCLAVE_KMS_CREDENTIALS_FAILED', message: /403/ })
  })

  it('validates options and static credentials', () => {
    expect(() => createImdsCredentialsProvider({ endpoint: 'https://x' })).toThrow(
      expect.objectContaining({ code: 'ENCLAVE_KMS_INVALID_OPTION' }),
    )
    expect(() => staticCredentials({ accessKeyId: '', secretAccessKey: 'x' })).toThrow(
      expect.objectContaining({ code: 'ENCLAVE_KMS_INVALID_OPTION' }),
    )
  })
})
