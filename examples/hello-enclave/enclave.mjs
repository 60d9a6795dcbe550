// The "enclave" app of the hello example. It runs unchanged inside a real Nitro Enclave: only the
// environment differs (with ENCLAVE_VSOCK_DEV_DIR set, vsock is emulated with Unix sockets).
// Everything it is configured with comes from the bridge host's forwarded environment.
import http from 'node:http'
import {
  connectBridge,
  createBridgeDispatcher,
  createBridgeLogger,
  createLogDestination,
  enclaveCid,
  envVar,
  newEnclaveId,
  parseEnv,
  serveHttp,
} from '@enclave/bridge-enclave'
import { request } from 'undici'

const HTTP_VSOCK_PORT = 5001
const EGRESS_VSOCK_PORT = 5002

// Logs go to the host's stdout (vsock 4999), whole lines, from the very start.
const logs = createLogDestination()
const log = createBridgeLogger({ appName: 'hello-enclave' }, logs)

const handshake = await connectBridge()
const config = parseEnv(handshake.env, {
  hostPort: envVar.int('HELLO_HTTP_PORT', { default: 8080, min: 1, max: 65535 }),
  upstream: envVar.optional(envVar.url('HELLO_UPSTREAM_URL', { protocols: ['http', 'https'] })),
  greeting: envVar.string('HELLO_GREETING', { default: 'Hello from the enclave!' }),
})
log.info({ forwardedEnv: Object.keys(handshake.env) }, 'environment received from the bridge host')

const session = await handshake.finish({
  appName: 'hello-enclave',
  watchdog: { enclaveId: newEnclaveId(), intervalMs: 10_000 },
  logger: { level: 'info' },
  servers: [{ enclaveCid: enclaveCid(), enclaveListenPort: HTTP_VSOCK_PORT, bridgeTcpPort: config.hostPort }],
  clients: [{ enclaveDialPort: EGRESS_VSOCK_PORT, requestTimeoutMs: 0 }],
})
log.info({ hostPort: config.hostPort }, 'tunnels ready')

const egress = createBridgeDispatcher({ port: EGRESS_VSOCK_PORT })

/** One request out of the enclave, through the client tunnel. */
async function outbound() {
  if (!config.upstream) return { ok: false, error: 'HELLO_UPSTREAM_URL was not forwarded' }
  try {
    const res = await request(config.upstream, { dispatcher: egress })
    const body = await res.body.text()
    return { ok: true, url: config.upstream.href, status: res.statusCode, body }
  } catch (err) {
    return { ok: false, url: config.upstream.href, error: err.message, code: err.code }
  }
}

const server = http.createServer(async (req, res) => {
  log.info({ method: req.method, url: req.url }, 'request')
  if (req.url === '/outbound') {
    const result = await outbound()
    log.info(result, 'outbound request through the client tunnel')
    res
      .writeHead(result.ok ? 200 : 502, { 'content-type': 'application/json' })
      .end(`${JSON.stringify(result)}\n`)
    return
  }
  res.writeHead(200, { 'content-type': 'text/plain' }).end(`${config.greeting}\n`)
})
const served = await serveHttp(server, { port: HTTP_VSOCK_PORT })
log.info({ vsockPort: HTTP_VSOCK_PORT }, 'HTTP server listening on vsock')

let stopping = false
async function stop(code, why) {
  if (stopping) return
  stopping = true
  log.info({ why }, 'enclave app stopping')
  session.close()
  await served.close()
  await egress.close()
  await logs.close()
  process.exit(code)
}
session.watchdog?.on('failure', (err) => {
  log.error({ err: err.message }, 'bridge watchdog failed')
  void stop(1, err.code)
})
process.once('SIGTERM', () => void stop(0, 'SIGTERM'))
process.once('SIGINT', () => void stop(0, 'SIGINT'))
