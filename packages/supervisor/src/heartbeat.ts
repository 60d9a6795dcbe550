import { connect, type DevModeOptions } from '@enclave/vsock-transport'
import { HeartbeatFailedError } from './errors.js'

/** Nitro's boot heartbeat: the byte 0xB7 to the parent (CID 3) on port 9000, answered with 0xB7. */
export const HEARTBEAT_BYTE = 0xb7
export const HEARTBEAT_ADDRESS = 'vsock://3:9000'

export interface HeartbeatOptions {
  /** @default vsock://3:9000 */
  readonly address?: string
  /** Dev mode (Unix sockets); required off Nitro, since CID 3 is this machine's real host. */
  readonly dev?: DevModeOptions | false
  /** @default 10000 */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

/**
 * Sends the heartbeat that nitro-cli's run-enclave waits for. Only a custom init (odyn as PID 1
 * without the AWS init in front of it) must send it; never call it on a machine that is not an
 * enclave unless `dev` points at a Unix-socket directory.
 */
export async function sendBootHeartbeat(options: HeartbeatOptions = {}): Promise<void> {
  const address = options.address ?? HEARTBEAT_ADDRESS
  const timeoutMs = options.timeoutMs ?? 10_000
  let socket: Awaited<ReturnType<typeof connect>>
  try {
    socket = await connect(address, { timeoutMs, dev: options.dev, signal: options.signal })
  } catch (cause) {
    throw new HeartbeatFailedError(`cannot reach the heartbeat listener at ${address}`, { cause })
  }
  try {
    const reply = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs)
      socket.once('data', (chunk: Buffer) => {
        clearTimeout(timer)
        resolve(chunk[0]!)
      })
      socket.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      socket.once('end', () => {
        clearTimeout(timer)
        reject(new Error('the listener closed without replying'))
      })
      socket.write(Buffer.from([HEARTBEAT_BYTE]))
    })
    if (reply !== HEARTBEAT_BYTE) {
      throw new HeartbeatFailedError(
        `the heartbeat listener at ${address} answered 0x${reply.toString(16)} instead of 0xb7`,
      )
    }
  } catch (cause) {
    if (cause instanceof HeartbeatFailedError) throw cause
    throw new HeartbeatFailedError(`heartbeat to ${address} failed: ${(cause as Error).message}`, { cause })
  } finally {
    socket.destroy()
  }
}
