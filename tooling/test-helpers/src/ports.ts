import { connect, createServer } from 'node:net'

export interface DeadPort {
  /** A loopback TCP port where nothing listens and nothing can start listening while held. */
  readonly port: number
  /** Frees the port. Idempotent. */
  release(): Promise<void>
}

/**
 * Holds a TCP port that refuses connections (ECONNREFUSED) for as long as the test needs it.
 * "Find a free port, close it, dial it" races with every other process picking ports; here the
 * port is the local end of a held loopback connection: bound, never listening, and the kernel
 * will neither hand it to `listen(0)` nor let anyone bind it until `release()`.
 */
export async function holdDeadPort(): Promise<DeadPort> {
  const server = createServer((s) => s.on('error', () => {}))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port: serverPort } = server.address() as { port: number }
  const client = connect(serverPort, '127.0.0.1')
  client.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
  })
  // Nothing else may connect in to the helper's own listener.
  server.close()
  let released: Promise<void> | undefined
  return {
    port: client.localPort as number,
    release: () => {
      released ??= new Promise<void>((resolve) => {
        client.once('close', () => resolve())
        client.destroy()
      })
      return released
    },
  }
}
