import { execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'
import { makeTempDir, waitFor } from '@enclave/test-helpers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningProxy, startProxy } from './proxy.js'

// Transparent proxying for real, the way Sentient deploys it, in two network namespaces that only
// share Unix sockets (standing in for vsock):
//
//   "enclave" netns: client ──▶ 10.99.0.1:ECHO ─(iptables REDIRECT)─▶ ip-to-vsock-transparent
//                    client ──▶ 10.99.0.2:ECHO ─(iptables REDIRECT)─▶ transparent-port-to-vsock
//   "parent" netns:  vsock-to-ip-transparent ──▶ 10.99.0.1:ECHO (echo server, local to this netns)
//                    vsock-to-ip (dev vsock 7:ECHO) ──▶ 10.99.0.1:ECHO
//
// The original destination must travel in the header for the echo to come back. Two namespaces
// because a REDIRECT rule in one namespace would also catch vsock-to-ip-transparent's own dial.
// No packet leaves the namespaces: 10.99.0.x are local addresses on their loopback devices.

const suffix = `${process.pid}-${Date.now() % 100_000}`
const ENCLAVE = `pfx-enc-${suffix}`
const PARENT = `pfx-par-${suffix}`
const ECHO_PORT = 7001
const TP_PORT = 8888
const TPP_PORT = 8889
const proxies: RunningProxy[] = []
const dir = makeTempDir('pf-proxy-netns-')
let echo: ReturnType<typeof spawn> | undefined

function run(...args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function inNetns(netns: string, ...args: string[]): string {
  return run('ip', 'netns', 'exec', netns, ...args)
}

/** Runs a one-shot Node client inside the enclave namespace; returns what it read back. */
function clientInEnclave(host: string, port: number, message: string): string {
  const script = `
    const net = require('node:net')
    const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port}, allowHalfOpen: true })
    const chunks = []
    s.on('data', (c) => chunks.push(c))
    s.on('end', () => { process.stdout.write(Buffer.concat(chunks)); s.destroy() })
    s.on('error', (e) => {
      // A proxy that drops us with our bytes unread makes the kernel reset: a hang-up here.
      if (e.code === 'ECONNRESET') { process.stdout.write(Buffer.concat(chunks)); process.exit(0) }
      console.error(e.message); process.exit(3)
    })
    s.end(${JSON.stringify(message)})
    setTimeout(() => { console.error('client timed out'); process.exit(4) }, 15000).unref()`
  return inNetns(ENCLAVE, process.execPath, '-e', script)
}

describe('transparent proxying through iptables REDIRECT in network namespaces (needs root)', () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) {
      throw new Error(
        'this test needs root (it creates network namespaces and iptables rules); run the suite as root, as CI does',
      )
    }
    for (const [netns, address] of [
      [ENCLAVE, '10.99.0.1/32'],
      [PARENT, '10.99.0.1/32'],
    ] as const) {
      run('ip', 'netns', 'add', netns)
      inNetns(netns, 'ip', 'link', 'set', 'lo', 'up')
      inNetns(netns, 'ip', 'addr', 'add', address, 'dev', 'lo')
    }
    inNetns(ENCLAVE, 'ip', 'addr', 'add', '10.99.0.2/32', 'dev', 'lo')
    for (const [destination, port] of [
      ['10.99.0.1', TP_PORT],
      ['10.99.0.2', TPP_PORT],
    ] as const) {
      inNetns(
        ENCLAVE,
        'iptables',
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-d',
        destination,
        '-j',
        'REDIRECT',
        '--to-ports',
        String(port),
      )
    }

    // The target: an echo server in the parent namespace, on the address the client dialled.
    echo = spawn(
      'ip',
      [
        'netns',
        'exec',
        PARENT,
        process.execPath,
        '-e',
        `require('node:net').createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); s.pipe(s) })
           .listen(${ECHO_PORT}, '10.99.0.1', () => console.log('ready'))`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    // Ready line, or the reason it died (a hang here would only say "hook timed out").
    const echoProcess = echo
    let echoStderr = ''
    echoProcess.stderr!.on('data', (chunk: Buffer) => {
      echoStderr += chunk
    })
    await new Promise<void>((resolve, reject) => {
      echoProcess.stdout!.once('data', () => resolve())
      echoProcess.once('error', reject)
      echoProcess.once('close', (code, signal) =>
        reject(
          new Error(
            `the echo server exited (${code ?? signal}) before it was ready: ${echoStderr.trim() || '(no stderr)'}`,
          ),
        ),
      )
    })

    const parent = ['ip', 'netns', 'exec', PARENT]
    const enclave = ['ip', 'netns', 'exec', ENCLAVE]
    const tpSocket = `unix://${join(dir.path, 'tp.sock')}`
    proxies.push(
      await startProxy(['vsock-to-ip-transparent', '--vsock-addr', tpSocket, '--allow', '10.99.0.0/24'], {
        prefix: parent,
      }),
      await startProxy(
        [
          'vsock-to-ip',
          '--vsock-addr',
          `7:${ECHO_PORT}`,
          '--ip-addr',
          `10.99.0.1:${ECHO_PORT}`,
          '--dev-dir',
          dir.path,
        ],
        {
          prefix: parent,
        },
      ),
      await startProxy(
        ['ip-to-vsock-transparent', '--ip-addr', `127.0.0.1:${TP_PORT}`, '--vsock-addr', tpSocket],
        {
          prefix: enclave,
        },
      ),
      await startProxy(
        [
          'transparent-port-to-vsock',
          '--ip-addr',
          `127.0.0.1:${TPP_PORT}`,
          '--vsock',
          '7',
          '--dev-dir',
          dir.path,
        ],
        {
          prefix: enclave,
        },
      ),
    )
  })

  afterAll(async () => {
    for (const proxy of proxies) await proxy.stop('SIGKILL')
    echo?.kill('SIGKILL')
    for (const netns of [ENCLAVE, PARENT]) {
      try {
        run('ip', 'netns', 'del', netns)
      } catch {
        // Not created (setup failed early).
      }
    }
    dir.remove()
  })

  it('ip-to-vsock-transparent sends the original destination; vsock-to-ip-transparent dials it', () => {
    expect(clientInEnclave('10.99.0.1', ECHO_PORT, 'through the transparent pair')).toBe(
      'through the transparent pair',
    )
    const sender = proxies[2]!
    const receiver = proxies[0]!
    expect(sender.lines.some((line) => line.msg === 'connection failed')).toBe(false)
    expect(receiver.lines.some((line) => line.msg === 'connection failed')).toBe(false)
  })

  it('transparent-port-to-vsock dials vsock CID:<original port> without a header', () => {
    expect(clientInEnclave('10.99.0.2', ECHO_PORT, 'same port on vsock')).toBe('same port on vsock')
  })

  it('drops a connection made straight to the transparent listener instead of looping', async () => {
    // With conntrack active in this namespace, SO_ORIGINAL_DST of a direct connection is the
    // listener itself; relaying it would make vsock-to-ip-transparent dial a loop.
    expect(clientInEnclave('127.0.0.1', TP_PORT, 'direct')).toBe('')
    const sender = proxies[2]!
    await waitFor(() => sender.lines.find((line) => line.msg === 'connection failed'), {
      what: 'the drop to be logged',
    })
    const failure = sender.lines.find((line) => line.msg === 'connection failed') as {
      err?: { message?: string }
    }
    expect(failure.err?.message).toContain('was not redirected')
  })

  it('each proxy stops cleanly with exit code 0 on SIGTERM', async () => {
    for (const proxy of proxies.splice(0)) expect(await proxy.stop('SIGTERM')).toBe(0)
  })
})
