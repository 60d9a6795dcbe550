#!/usr/bin/env node
// The project's main demo, end to end on one machine in dev mode (vsock emulated over Unix sockets):
// the bridge host (apps/enclave-bridge) and the "enclave" app (enclave.mjs) start; the enclave's
// HTTP server on vsock 5001 answers on http://localhost:8080/ through a server tunnel; the enclave
// makes an outbound request through a client tunnel (vsock 5002) to a local HTTP server; the
// enclave's logs come out of the host's stdout.
//
//   node examples/hello-enclave/start.mjs [--once] [--port 8080]     (after `pnpm build`)
//
// Non-interactive runs (no TTY, CI set, or --once) exit 0 after demonstrating; interactive ones
// keep running until Ctrl-C and stop both processes cleanly. HELLO_PORT also sets the port.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '../..')
const bridgeBin = join(root, 'apps/enclave-bridge/dist/main.js')
const enclaveApp = join(here, 'enclave.mjs')

const args = process.argv.slice(2)
const once = args.includes('--once') || !process.stdout.isTTY || Boolean(process.env.CI)
const portArg = args.indexOf('--port')
const port = Number(portArg >= 0 ? args[portArg + 1] : (process.env.HELLO_PORT ?? 8080))

const c = process.stdout.isTTY
  ? {
      dim: (s) => `\x1b[2m${s}\x1b[0m`,
      bold: (s) => `\x1b[1m${s}\x1b[0m`,
      cyan: (s) => `\x1b[36m${s}\x1b[0m`,
    }
  : { dim: (s) => s, bold: (s) => s, cyan: (s) => s }
const say = (text) => process.stdout.write(`${text}\n`)

function fail(message, code = 1) {
  process.stderr.write(`hello-enclave: ${message}\n`)
  process.exit(code)
}

if (!Number.isInteger(port) || port < 1 || port > 65535)
  fail(`invalid port ${port} (use --port N or HELLO_PORT)`, 2)
for (const file of [bridgeBin, join(root, 'packages/bridge-enclave/dist/index.js')]) {
  if (!existsSync(file)) fail(`${file} is missing: run \`pnpm build\` first`, 2)
}

/** Resolves if `port` can be bound on loopback; the demo needs it for the server tunnel. */
function checkPortFree(p) {
  return new Promise((ok, bad) => {
    const probe = net.createServer()
    probe.once('error', bad)
    probe.listen(p, '127.0.0.1', () => probe.close(ok))
  })
}

try {
  await checkPortFree(port)
} catch (err) {
  fail(`port ${port} is taken (${err.code}); choose another with --port N or HELLO_PORT=N`, 2)
}

function get(url) {
  return new Promise((ok, bad) => {
    const req = http.get(url, { timeout: 15_000, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        body += d
      })
      res.on('end', () => ok({ status: res.statusCode, body }))
    })
    req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out`)))
    req.once('error', bad)
  })
}

// "The outside world": a local HTTP server the enclave reaches through its client tunnel.
const upstream = http.createServer((req, res) => {
  res
    .writeHead(200, { 'content-type': 'text/plain' })
    .end(`hello from the host side, you asked for ${req.url}`)
})
await new Promise((ok) => upstream.listen(0, '127.0.0.1', ok))
const upstreamUrl = `http://127.0.0.1:${upstream.address().port}/from-the-enclave`

const devDir = mkdtempSync(join(tmpdir(), 'hello-enclave-'))
// The bridge binds its monitoring port itself (port 0: the kernel picks, no race with other
// processes) and logs the port it got; we read it off its stderr.
let monitorPortFound
const monitorPortReady = new Promise((ok) => {
  monitorPortFound = ok
})
function noteMonitorPort(line) {
  try {
    const rec = JSON.parse(line)
    if (rec.msg === 'monitoring on /metrics and /healthz' && Number.isInteger(rec.port))
      monitorPortFound(rec.port)
  } catch {}
}

const children = []
function start(name, file, argv, env, onStdoutLine, onStderrLine) {
  const child = spawn(process.execPath, [file, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  child.exited = new Promise((ok) => child.once('exit', (code, signal) => ok({ code, signal })))
  createInterface({ input: child.stdout }).on('line', onStdoutLine)
  createInterface({ input: child.stderr }).on('line', onStderrLine)
  children.push({ name, child })
  return child
}

/** Short text of a pino JSON line. */
function brief(line) {
  try {
    const rec = JSON.parse(line)
    const { level, time, pid, hostname, name, app, msg, ...rest } = rec
    const extra = Object.keys(rest).length ? ` ${c.dim(JSON.stringify(rest))}` : ''
    return `${msg}${extra}`
  } catch {
    return line
  }
}

const baseEnv = { PATH: process.env.PATH ?? '', ENCLAVE_VSOCK_DEV_DIR: devDir }
say(c.bold('hello-enclave: bridge host + enclave app in dev mode (vsock over Unix sockets)'))
say(c.dim(`  dev dir ${devDir}; host port ${port}; upstream ${upstreamUrl}`))

// The host forwards only what its allowlist names: HELLO_* goes to the enclave, DEMO_SECRET does not.
start(
  'bridge host',
  bridgeBin,
  [
    '--forward-env',
    'HELLO_*',
    '--allow-destination',
    `127.0.0.1:${upstream.address().port}`,
    '--monitor-port',
    '0',
    '--drain-timeout',
    '2000',
  ],
  {
    ...baseEnv,
    ENCLAVE_VSOCK_DEV_CID: '3',
    HELLO_HTTP_PORT: String(port),
    HELLO_UPSTREAM_URL: upstreamUrl,
    DEMO_SECRET: 'never-leaves-the-host',
  },
  (line) => say(`${c.cyan('[enclave log]')} ${brief(line)}`),
  (line) => {
    noteMonitorPort(line)
    say(`${c.dim('[bridge]')} ${c.dim(brief(line))}`)
  },
)
start(
  'enclave app',
  enclaveApp,
  [],
  // The enclave gets nothing from this environment except dev-mode plumbing: its config arrives
  // through the bridge, as it would in a real enclave.
  { ...baseEnv, ENCLAVE_VSOCK_DEV_CID: '16' },
  (line) => say(`[enclave stdout] ${line}`),
  (line) => say(`${c.dim('[enclave stderr]')} ${line}`),
)

let stopping
async function stopAll(code) {
  stopping ??= (async () => {
    for (const { child } of children) if (child.exitCode === null) child.kill('SIGTERM')
    const results = await Promise.race([
      Promise.all(children.map(async ({ name, child }) => ({ name, ...(await child.exited) }))),
      new Promise((ok) => setTimeout(() => ok(undefined), 15_000)),
    ])
    if (!results) {
      for (const { child } of children) child.kill('SIGKILL')
      say('hello-enclave: children did not stop within 15 s; killed')
      code = 1
    } else {
      for (const r of results) {
        say(c.dim(`  ${r.name} exited with ${r.signal ?? r.code}`))
        if (r.code !== 0) code = code || 1
      }
    }
    upstream.close()
    rmSync(devDir, { recursive: true, force: true })
    process.exit(code)
  })()
  return stopping
}

for (const { name, child } of children) {
  child.exited.then(({ code, signal }) => {
    if (!stopping) {
      say(`hello-enclave: the ${name} exited unexpectedly (${signal ?? code})`)
      void stopAll(1)
    }
  })
}
process.once('SIGINT', () => void stopAll(0))
process.once('SIGTERM', () => void stopAll(0))

async function waitForHello(deadlineMs) {
  const deadline = Date.now() + deadlineMs
  let last = 'no answer yet'
  for (;;) {
    try {
      const res = await get(`http://localhost:${port}/`)
      if (res.status === 200) return res
      last = `HTTP ${res.status}`
    } catch (err) {
      last = err.message
    }
    // Checked every round: a steady 502 (tunnel up, enclave not) must end too.
    if (Date.now() > deadline) throw new Error(`no hello within ${deadlineMs} ms (last: ${last})`)
    await new Promise((ok) => setTimeout(ok, 100))
  }
}

/** The monitoring port the bridge reported, or an error after `deadlineMs`. */
async function waitForMonitorPort(deadlineMs) {
  let timer
  const late = new Promise((_, bad) => {
    timer = setTimeout(
      () => bad(new Error(`the bridge did not report its monitoring port within ${deadlineMs} ms`)),
      deadlineMs,
    )
  })
  try {
    return await Promise.race([monitorPortReady, late])
  } finally {
    clearTimeout(timer)
  }
}

try {
  const hello = await waitForHello(30_000)
  say('')
  say(c.bold(`$ curl http://localhost:${port}/`))
  say(hello.body.trimEnd())
  const out = await get(`http://localhost:${port}/outbound`)
  say('')
  say(
    c.bold(`$ curl http://localhost:${port}/outbound`) +
      c.dim('   # the enclave dials out through its client tunnel'),
  )
  say(out.body.trimEnd())
  const monitorPort = await waitForMonitorPort(10_000)
  const health = await get(`http://127.0.0.1:${monitorPort}/healthz`)
  say('')
  say(c.bold(`$ curl http://127.0.0.1:${monitorPort}/healthz`) + c.dim('   # the bridge host'))
  say(health.body.trimEnd())
  say('')
  const ok =
    hello.body.trim() === 'Hello from the enclave!' && out.status === 200 && JSON.parse(out.body).ok === true
  if (!ok) {
    say('hello-enclave: the demo did not get the expected answers')
    await stopAll(1)
  }
  if (once) {
    // Give the enclave's last log lines a moment to reach the host's stdout.
    await new Promise((ok) => setTimeout(ok, 300))
    say(c.dim('non-interactive run: stopping both processes'))
    await stopAll(0)
  } else {
    say(c.bold(`Running. Try: curl http://localhost:${port}/   Press Ctrl-C to stop.`))
  }
} catch (err) {
  say(`hello-enclave: ${err.message}`)
  await stopAll(1)
}
