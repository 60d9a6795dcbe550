/**
 * Where the proxy's SigV4 credentials come from. Any function returning AWS credentials works
 * (the AWS SDK's providers have the same shape); two are built in: credentials handed over by the
 * host, and the instance role from IMDSv2, reached through the egress proxy (the enclave has no
 * route to 169.254.169.254 otherwise).
 */

import { request } from 'node:http'
import { CredentialsFailedError, InvalidOptionError } from './errors.js'

export interface AwsCredentials {
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly sessionToken?: string
  readonly expiration?: Date
}

/** Returns current credentials; called for every signature, so cache inside. */
export type CredentialsProvider = () => Promise<AwsCredentials>

function checkCredentials(value: AwsCredentials, where: string): AwsCredentials {
  if (
    !value ||
    typeof value.accessKeyId !== 'string' ||
    value.accessKeyId.length === 0 ||
    typeof value.secretAccessKey !== 'string' ||
    value.secretAccessKey.length === 0
  ) {
    throw new CredentialsFailedError(`${where}: accessKeyId and secretAccessKey must be non-empty strings`)
  }
  return value
}

/** Fixed credentials, e.g. handed over by the host at start. */
export function staticCredentials(credentials: AwsCredentials): CredentialsProvider {
  try {
    checkCredentials(credentials, 'staticCredentials')
  } catch (err) {
    throw new InvalidOptionError((err as Error).message)
  }
  const frozen = Object.freeze({ ...credentials })
  return async () => frozen
}

export interface ImdsOptions {
  /** IMDS base URL. @default http://169.254.169.254 */
  endpoint?: string
  /** HTTP proxy for absolute-URI requests (the enclave's egress proxy), e.g. http://127.0.0.1:10000. @default direct */
  proxy?: string
  /** Per-request timeout, ms. @default 5000 */
  timeoutMs?: number
  /** Refresh this long before the credentials expire, ms. @default 300000 */
  refreshBeforeMs?: number
}

const MAX_IMDS_BODY = 64 * 1024

function imdsCall(
  base: URL,
  proxy: URL | undefined,
  method: 'GET' | 'PUT',
  path: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<string> {
  const target = new URL(path, base)
  return new Promise((resolve, reject) => {
    const req = request(
      proxy
        ? {
            host: proxy.hostname,
            port: proxy.port || 80,
            path: target.href,
            method,
            headers: { ...headers, host: target.host },
          }
        : { host: target.hostname, port: target.port || 80, path: target.pathname, method, headers },
      (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > MAX_IMDS_BODY)
            req.destroy(new Error(`IMDS answer to ${path} exceeds ${MAX_IMDS_BODY} bytes`))
          else chunks.push(chunk)
        })
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8')
          if (res.statusCode !== 200) reject(new Error(`IMDS ${method} ${path} answered ${res.statusCode}`))
          else resolve(body)
        })
        res.on('error', reject)
      },
    )
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`IMDS ${method} ${path} timed out after ${timeoutMs} ms`)),
    )
    req.on('error', reject)
    req.end()
  })
}

/** Instance-role credentials from IMDSv2 (token, role name, then the role's credentials), cached until near expiry. */
export function createImdsCredentialsProvider(options: ImdsOptions = {}): CredentialsProvider {
  let base: URL
  let proxy: URL | undefined
  try {
    base = new URL(options.endpoint ?? 'http://169.254.169.254')
    proxy = options.proxy === undefined ? undefined : new URL(options.proxy)
  } catch (err) {
    throw new InvalidOptionError(`endpoint and proxy must be http:// URLs: ${(err as Error).message}`)
  }
  if (base.protocol !== 'http:' || (proxy && proxy.protocol !== 'http:')) {
    throw new InvalidOptionError('endpoint and proxy must be http:// URLs')
  }
  const timeoutMs = options.timeoutMs ?? 5000
  const refreshBeforeMs = options.refreshBeforeMs ?? 300_000
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new InvalidOptionError('timeoutMs must be > 0')
  if (!Number.isFinite(refreshBeforeMs) || refreshBeforeMs < 0)
    throw new InvalidOptionError('refreshBeforeMs must be ≥ 0')

  let cached: AwsCredentials | undefined
  let pending: Promise<AwsCredentials> | undefined

  async function fetchCredentials(): Promise<AwsCredentials> {
    try {
      const token = await imdsCall(
        base,
        proxy,
        'PUT',
        '/latest/api/token',
        { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' },
        timeoutMs,
      )
      const auth = { 'x-aws-ec2-metadata-token': token.trim() }
      const roles = await imdsCall(
        base,
        proxy,
        'GET',
        '/latest/meta-data/iam/security-credentials/',
        auth,
        timeoutMs,
      )
      const role = roles.split('\n')[0]?.trim()
      if (!role) throw new Error('the instance has no IAM role')
      const body = JSON.parse(
        await imdsCall(
          base,
          proxy,
          'GET',
          `/latest/meta-data/iam/security-credentials/${encodeURIComponent(role)}`,
          auth,
          timeoutMs,
        ),
      ) as {
        Code?: string
        AccessKeyId?: string
        SecretAccessKey?: string
        Token?: string
        Expiration?: string
      }
      if (body.Code !== undefined && body.Code !== 'Success') throw new Error(`role ${role}: ${body.Code}`)
      return checkCredentials(
        {
          accessKeyId: body.AccessKeyId ?? '',
          secretAccessKey: body.SecretAccessKey ?? '',
          ...(body.Token ? { sessionToken: body.Token } : {}),
          ...(body.Expiration ? { expiration: new Date(body.Expiration) } : {}),
        },
        `IMDS role ${role}`,
      )
    } catch (err) {
      if (err instanceof CredentialsFailedError) throw err
      throw new CredentialsFailedError(`IMDSv2 at ${base.origin}: ${(err as Error).message}`, { cause: err })
    }
  }

  return async () => {
    const expires = cached?.expiration?.getTime()
    if (cached && (expires === undefined || expires - refreshBeforeMs > Date.now())) return cached
    pending ??= fetchCredentials().finally(() => {
      pending = undefined
    })
    cached = await pending
    return cached
  }
}
