import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

/** The built bin; tests spawn it as users do (`pnpm --filter @enclave/pf-proxy build` first). */
export const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))

export interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

export interface RunningProxy {
  child: ChildProcess
  /** Every JSON log line so far. */
  lines: LogLine[]
  /** The address it listens on, from its "pf-proxy ready" line. */
  listen: string
  /** SIGTERM, then the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/**
 * Spawns `pf-proxy ...args` (optionally through a prefix such as `ip netns exec NAME`) and
 * resolves once it logs "pf-proxy ready"; rejects with its stderr if it exits first.
 */
export function startProxy(
  args: string[],
  { prefix = [] as string[], timeoutMs = 20_000 } = {},
): Promise<RunningProxy> {
  const command = prefix.length > 0 ? prefix[0]! : process.execPath
  const argv = [...prefix.slice(1), ...(prefix.length > 0 ? [process.execPath] : []), BIN, ...args]
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: LogLine[] = []
  let stderr = ''
  let buffered = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`pf-proxy ${args[0]} was not ready within ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      buffered += chunk.toString()
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const text = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        if (!text.startsWith('{')) continue
        const line = JSON.parse(text) as LogLine
        lines.push(line)
        if (line.msg === 'pf-proxy ready') {
          clearTimeout(timer)
          resolve({
            child,
            lines,
            listen: String(line.listen),
            stop: async (signal = 'SIGTERM') => {
              if (child.exitCode !== null) return child.exitCode
              child.kill(signal)
              const [code] = (await once(child, 'exit')) as [number | null]
              return code
            },
          })
        }
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`pf-proxy ${args[0]} exited with ${code} before it was ready; stderr: ${stderr}`))
    })
  })
}

export function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

/**
 * Sends `data` over a fresh connection, half-closes, and resolves with everything read back. A
 * proxy that drops the connection with our bytes unread makes the kernel send a reset: that
 * counts as a hang-up here, and the test looks at what was read.
 */
export async function exchange(options: net.NetConnectOpts, data: Buffer | string): Promise<Buffer> {
  const socket = net.connect({ ...options, allowHalfOpen: true })
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  const ended = new Promise<void>((resolve, reject) => {
    socket.once('end', () => resolve())
    socket.once('close', () => resolve())
    socket.once('error', (error: NodeJS.ErrnoException) =>
      error.code === 'ECONNRESET' ? resolve() : reject(error),
    )
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.end(data)
  await ended
  socket.destroy()
  return Buffer.concat(chunks)
}

/** A TCP echo server on 127.0.0.1:0 that keeps half-close. */
export async function echoServer(): Promise<{
  port: number
  /** Connections accepted so far. */
  accepted: () => number
  close: () => Promise<void>
}> {
  const sockets = new Set<net.Socket>()
  let accepted = 0
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    accepted += 1
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    socket.pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () => {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
