import { once } from 'node:events'
import net from 'node:net'

/** A TCP server on 127.0.0.1:0; `url` is its tcp:// address. Tracks sockets so close() is prompt. */
export async function tcpServer(
  onConnection: (socket: net.Socket) => void,
  options: net.ServerOpts = {},
): Promise<{
  server: net.Server
  port: number
  url: string
  sockets: Set<net.Socket>
  close: () => Promise<void>
}> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true, ...options }, (socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    onConnection(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  return {
    server,
    port,
    url: `tcp://127.0.0.1:${port}`,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** An echo server that keeps half-close: it ends its side when the client ends. */
export function echoServer(): ReturnType<typeof tcpServer> {
  return tcpServer((socket) => socket.pipe(socket))
}

export function portOf(url: string): number {
  return Number(url.slice(url.lastIndexOf(':') + 1))
}

/** Connects to a tunnel's tcp:// address and resolves once connected. */
export async function dial(url: string): Promise<net.Socket> {
  const socket = net.connect({ port: portOf(url), host: '127.0.0.1', allowHalfOpen: true })
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** Reads a socket until it ends or closes; resolves with everything it received. */
export function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    const done = (): void => resolve(Buffer.concat(chunks))
    socket.once('end', done)
    socket.once('close', done)
  })
}

/** Sends `data`, half-closes, and resolves with the reply read until the peer ends. */
export async function roundTrip(url: string, data: Buffer | string): Promise<Buffer> {
  const socket = await dial(url)
  const reply = readAll(socket)
  socket.end(data)
  const result = await reply
  socket.destroy()
  return result
}

/** Resolves once the peer has ended or the socket closed (the tunnel hung up on us). */
export function hungUp(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.readableEnded || socket.destroyed) {
      resolve()
      return
    }
    socket.once('end', () => resolve())
    socket.once('close', () => resolve())
    socket.resume()
  })
}
