import net from 'node:net'

/**
 * A small Firecracker-style hybrid vsock multiplexer over real Unix sockets, for tests. It
 * accepts on `path`, reads `CONNECT <port>\n`, dials the "guest" port (here the Unix socket
 * `<path>_<port>`, where listen('hvsock://<path>:<port>') puts it), answers `OK <n>\n` and
 * bridges both ways with half-close. Nothing at the port: it closes the connection, as
 * Firecracker does. `mode` makes it misbehave for the error-path tests.
 */
export type MuxMode = 'normal' | 'silent' | 'garbage' | 'no-newline' | 'trailing-bytes'

export interface FakeMux {
  /** CONNECT lines received, in order. */
  readonly requests: string[]
  /** Resolves with the next CONNECT line to arrive (a line already received does not count). */
  nextRequest(): Promise<string>
  close(): Promise<void>
}

export async function startFakeMux(path: string, mode: MuxMode = 'normal'): Promise<FakeMux> {
  const requests: string[] = []
  const waiters: ((line: string) => void)[] = []
  const sockets = new Set<net.Socket>()
  let nextHostPort = 1_073_741_824
  const track = (s: net.Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => s.destroy())
  }
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    track(client)
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk])
      const newline = head.indexOf(0x0a)
      if (newline < 0) {
        if (head.length > 64) client.destroy()
        return
      }
      client.off('data', onData)
      client.pause()
      const line = head.subarray(0, newline).toString('latin1')
      const rest = head.subarray(newline + 1)
      requests.push(line)
      for (const wake of waiters.splice(0)) wake(line)
      const match = /^CONNECT (\d+)$/.exec(line)
      if (!match) {
        client.destroy()
        return
      }
      if (mode === 'silent') return
      if (mode === 'garbage') {
        client.end('NOPE\n')
        return
      }
      if (mode === 'no-newline') {
        client.write('OK '.padEnd(100, '7'))
        return
      }
      const guest = net.connect({ path: `${path}_${match[1]}`, allowHalfOpen: true })
      track(guest)
      guest.once('error', () => client.end())
      guest.once('connect', () => {
        const reply = `OK ${nextHostPort++}\n`
        client.write(mode === 'trailing-bytes' ? `${reply}early bytes` : reply)
        if (rest.length > 0) guest.write(rest)
        client.pipe(guest)
        guest.pipe(client)
        client.resume()
      })
    }
    client.on('data', onData)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => resolve())
  })
  return {
    requests,
    nextRequest: () => new Promise<string>((resolve) => waiters.push(resolve)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
