import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { encodeOriginalDestination } from '@enclave/protocol'
import { makeTempDir, runCli, waitFor } from '@enclave/test-helpers'
import { afterEach, describe, expect, it } from 'vitest'
import { BIN, echoServer, exchange, portOf, type RunningProxy, startProxy } from './proxy.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function proxy(args: string[]): Promise<RunningProxy> {
  const running = await startProxy(args)
  cleanups.push(() => running.stop('SIGKILL'))
  return running
}

async function echo(): Promise<Awaited<ReturnType<typeof echoServer>>> {
  const server = await echoServer()
  cleanups.push(server.close)
  return server
}

function tempDir(): string {
  const dir = makeTempDir('pf-proxy-test-')
  cleanups.push(dir.remove)
  return dir.path
}

describe('pf-proxy --help and usage errors', () => {
  it('--help lists the five tools and the exit codes', async () => {
    const result = await runCli(BIN, ['--help'])
    expect(result.code).toBe(0)
    for (const tool of [
      'ip-to-vsock',
      'vsock-to-ip',
      'ip-to-vsock-transparent',
      'vsock-to-ip-transparent',
      'transparent-port-to-vsock',
    ]) {
      expect(result.stdout).toContain(tool)
    }
    expect(result.stdout).toContain('Exit codes')
  })

  it('a tool --help shows its flags, short forms included', async () => {
    const result = await runCli(BIN, ['ip-to-vsock', '--help'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('-i, --ip-addr <ip:port>')
    expect(result.stdout).toContain('-v, --vsock-addr <cid:port>')
  })

  it.each([
    [['ip-to-vsock', '-i', '127.0.0.1:1', '-v', '3:5000', '--bogus'], "unknown option '--bogus'"],
    [['ip-to-vsock', '-v', '3:5000'], '--ip-addr'],
    [['ip-to-vsock', '-i', 'not-an-address', '-v', '3:5000'], '--ip-addr'],
    [['vsock-to-ip', '-i', '127.0.0.1:1', '-v', '3'], '--vsock-addr'],
    [['vsock-to-ip', '-i', '127.0.0.1:1', '-v', 'unix://relative'], '--vsock-addr'],
    [['vsock-to-ip-transparent', '-v', '3:5000', '--allow', 'example.com'], '--allow'],
    [['transparent-port-to-vsock', '-i', '127.0.0.1:1', '--vsock', 'x:y'], '--vsock'],
    [['ip-to-vsock', '-i', '127.0.0.1:1', '-v', '3:5000', '--max-connections', '0'], '--max-connections'],
    [['ip-to-vsock', '-i', '127.0.0.1:1', '-v', '3:5000', '--dev-dir', 'relative/dir'], '--dev-dir'],
    [['no-such-tool'], "unknown command 'no-such-tool'"],
  ])('exits 2 naming the problem: %j', async (args, named) => {
    const result = await runCli(BIN, args)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(named)
  })

  it('vsock-to-ip-transparent refuses to start without --allow or --allow-any (exit 2, naming both)', async () => {
    const result = await runCli(BIN, ['vsock-to-ip-transparent', '-v', '3:5000'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('--allow CIDR[:PORT]')
    expect(result.stderr).toContain('--allow-any')
    const help = await runCli(BIN, ['vsock-to-ip-transparent', '--help'])
    expect(help.stdout).toMatch(/--allow-any[\s\S]*169\.254\.169\.254/)
  })

  it('--version prints the version in package.json', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    const result = await runCli(BIN, ['--version'])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toBe(version)
  })

  it('exits 3 when it cannot listen', async () => {
    const busy = await echo()
    const result = await runCli(BIN, ['ip-to-vsock', '-i', `127.0.0.1:${busy.port}`, '-v', '3:5000'])
    expect(result.code).toBe(3)
    expect(result.stderr).toContain(`cannot listen on tcp://127.0.0.1:${busy.port}`)
  })
})

describe('pf-proxy in dev mode (Unix sockets stand in for vsock)', () => {
  it('ip-to-vsock and vsock-to-ip relay both ways, then drain and exit 0 on SIGTERM', async () => {
    const dir = tempDir()
    const target = await echo()
    const inner = await proxy([
      'vsock-to-ip',
      '--vsock-addr',
      '3:5000',
      '--ip-addr',
      `127.0.0.1:${target.port}`,
      '--dev-dir',
      dir,
    ])
    expect(inner.listen).toBe('vsock://3:5000')
    const outer = await proxy(['ip-to-vsock', '-i', '127.0.0.1:0', '-v', '3:5000', '--dev-dir', dir])
    const payload = Buffer.alloc(2 * 1024 * 1024, 9)
    const reply = await exchange({ port: portOf(outer.listen), host: '127.0.0.1' }, payload)
    expect(reply.equals(payload)).toBe(true)
    expect(await outer.stop()).toBe(0)
    expect(await inner.stop()).toBe(0)
    const stopped = outer.lines.find((line) => line.msg === 'stopped')
    expect(stopped?.stats).toMatchObject({
      total: 1,
      errors: 0,
      bytesIn: payload.length,
      bytesOut: payload.length,
    })
  })

  it('takes unix:// URIs in --vsock-addr and drains an open connection on SIGINT', async () => {
    const dir = tempDir()
    const target = await echo()
    const socketPath = join(dir, 'v.sock')
    const inner = await proxy(['vsock-to-ip', '-v', `unix://${socketPath}`, '-i', `127.0.0.1:${target.port}`])
    const outer = await proxy(['ip-to-vsock', '-i', '127.0.0.1:0', '-v', `unix://${socketPath}`])
    const client = net.connect({ port: portOf(outer.listen), host: '127.0.0.1', allowHalfOpen: true })
    client.write('first')
    await once(client, 'data')
    const exited = once(outer.child, 'exit')
    outer.child.kill('SIGINT')
    await waitFor(() => outer.lines.some((line) => line.msg === 'shutting down: draining connections'), {
      what: 'the drain to start',
    })
    // The open connection keeps working until the client ends it; then the proxy exits 0.
    const reply: Buffer[] = []
    client.on('data', (chunk: Buffer) => reply.push(chunk))
    client.end('second')
    await once(client, 'end')
    expect(Buffer.concat(reply).toString()).toBe('second')
    expect((await exited)[0]).toBe(0)
    expect(await inner.stop()).toBe(0)
  })

  it('a second signal while draining exits 4 at once', async () => {
    const dir = tempDir()
    const target = await echo()
    const socketPath = join(dir, 'v.sock')
    const inner = await proxy(['vsock-to-ip', '-v', `unix://${socketPath}`, '-i', `127.0.0.1:${target.port}`])
    const client = net.connect({ path: socketPath, allowHalfOpen: true })
    client.on('error', () => {})
    client.write('held open')
    await once(client, 'data')
    const exited = once(inner.child, 'exit')
    inner.child.kill('SIGTERM')
    await waitFor(() => inner.lines.some((line) => line.msg === 'shutting down: draining connections'), {
      what: 'the drain to start',
    })
    inner.child.kill('SIGTERM')
    expect((await exited)[0]).toBe(4)
    client.destroy()
  })

  it('vsock-to-ip-transparent dials the header destination and relays the bytes after it', async () => {
    const dir = tempDir()
    const target = await echo()
    const socketPath = join(dir, 'tp.sock')
    const tp = await proxy(['vsock-to-ip-transparent', '-v', `unix://${socketPath}`, '--allow', '127.0.0.1'])
    expect(tp.lines.some((line) => line.msg.includes('--allow-any'))).toBe(false)
    const header = encodeOriginalDestination({ host: '127.0.0.1', port: target.port })
    const reply = await exchange(
      { path: socketPath },
      Buffer.concat([header, Buffer.from('after the header')]),
    )
    expect(reply.toString()).toBe('after the header')
  })

  it('vsock-to-ip-transparent refuses destinations outside --allow and keeps serving', async () => {
    const dir = tempDir()
    const allowed = await echo()
    const denied = await echo()
    const socketPath = join(dir, 'tp.sock')
    const tp = await proxy([
      'vsock-to-ip-transparent',
      '-v',
      `unix://${socketPath}`,
      '--allow',
      `127.0.0.1:${allowed.port}`,
    ])
    const deniedReply = await exchange(
      { path: socketPath },
      Buffer.concat([encodeOriginalDestination({ host: '127.0.0.1', port: denied.port }), Buffer.from('x')]),
    )
    expect(deniedReply.length).toBe(0)
    await waitFor(() => tp.lines.find((line) => line.msg === 'connection failed'), {
      what: 'the denial to be logged',
    })
    const failure = tp.lines.find((line) => line.msg === 'connection failed') as {
      err?: { message?: string }
    }
    expect(failure.err?.message).toContain('not in the --allow list')
    const reply = await exchange(
      { path: socketPath },
      Buffer.concat([
        encodeOriginalDestination({ host: '127.0.0.1', port: allowed.port }),
        Buffer.from('ok'),
      ]),
    )
    expect(reply.toString()).toBe('ok')
  })

  it('--allow-any refuses loopback and metadata destinations unless --allow lists them', async () => {
    const dir = tempDir()
    const listed = await echo()
    const unlisted = await echo()
    const socketPath = join(dir, 'tp.sock')
    const tp = await proxy([
      'vsock-to-ip-transparent',
      '-v',
      `unix://${socketPath}`,
      '--allow-any',
      '--allow',
      `127.0.0.1:${listed.port}`,
    ])
    expect(tp.lines.some((line) => line.msg.includes('--allow-any'))).toBe(true)
    const failures = () =>
      tp.lines.filter((line) => line.msg === 'connection failed') as { err?: { message?: string } }[]
    // Refused before any dial: the check runs on the header, so nothing is sent to these addresses.
    const refused = [
      { host: '169.254.169.254', port: 80, kind: 'cloud metadata' },
      { host: 'fd00:ec2::254', port: 80, kind: 'cloud metadata' },
      { host: '127.0.0.1', port: unlisted.port, kind: 'loopback' },
      { host: '::ffff:127.0.0.1', port: unlisted.port, kind: 'loopback' },
    ]
    for (const [i, { host, port, kind }] of refused.entries()) {
      const reply = await exchange(
        { path: socketPath },
        Buffer.concat([encodeOriginalDestination({ host, port }), Buffer.from('x')]),
      )
      expect(reply.length, host).toBe(0)
      await waitFor(() => failures().length > i, { what: `the refusal of ${host} to be logged` })
      expect(failures()[i]?.err?.message, host).toMatch(new RegExp(`${kind}.*refused even with --allow-any`))
    }
    expect(unlisted.accepted(), 'a refused destination was dialled').toBe(0)
    const reply = await exchange(
      { path: socketPath },
      Buffer.concat([
        encodeOriginalDestination({ host: '127.0.0.1', port: listed.port }),
        Buffer.from('listed'),
      ]),
    )
    expect(reply.toString()).toBe('listed')
  })

  it('vsock-to-ip-transparent drops a malformed header and serves the next connection', async () => {
    const dir = tempDir()
    const target = await echo()
    const socketPath = join(dir, 'tp.sock')
    const tp = await proxy(['vsock-to-ip-transparent', '-v', `unix://${socketPath}`, '--allow', '127.0.0.1'])
    const bad = await exchange({ path: socketPath }, Buffer.from([0x07, 1, 2, 3, 4, 5, 6, 7, 8]))
    expect(bad.length).toBe(0)
    await waitFor(() => tp.lines.find((line) => line.msg === 'connection failed'), {
      what: 'the failure to be logged',
    })
    const good = await exchange(
      { path: socketPath },
      Buffer.concat([
        encodeOriginalDestination({ host: '127.0.0.1', port: target.port }),
        Buffer.from('fine'),
      ]),
    )
    expect(good.toString()).toBe('fine')
  })

  it('ip-to-vsock-transparent and transparent-port-to-vsock drop connections that were not redirected', async () => {
    const dir = tempDir()
    for (const args of [
      ['ip-to-vsock-transparent', '-i', '127.0.0.1:0', '-v', `unix://${join(dir, 'never.sock')}`],
      ['transparent-port-to-vsock', '-i', '127.0.0.1:0', '--vsock', '7', '--dev-dir', dir],
    ]) {
      const tp = await proxy(args)
      const reply = await exchange({ port: portOf(tp.listen), host: '127.0.0.1' }, 'hello')
      expect(reply.length).toBe(0)
      await waitFor(() => tp.lines.find((line) => line.msg === 'connection failed'), { what: 'the failure' })
      const failure = tp.lines.find((line) => line.msg === 'connection failed') as {
        err?: { message?: string }
      }
      expect(failure.err?.message).toMatch(/original destination/i)
      expect(tp.child.exitCode).toBe(null)
    }
  })

  it('takes its log level from RUST_LOG', async () => {
    const dir = tempDir()
    const running = await startProxy(
      ['ip-to-vsock', '-i', '127.0.0.1:0', '-v', `unix://${join(dir, 'x.sock')}`],
      {
        prefix: ['env', 'RUST_LOG=warn,pf_proxy=debug'],
      },
    )
    cleanups.push(() => running.stop('SIGKILL'))
    expect(running.lines.find((line) => line.msg === 'pf-proxy ready')?.level).toBe(30)
    await exchange({ port: portOf(running.listen), host: '127.0.0.1' }, 'x')
    // debug (20) lines appear only because RUST_LOG asked for them.
    await waitFor(() => running.lines.some((line) => line.level === 20), { what: 'a debug line' })
  })
})
