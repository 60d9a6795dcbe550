/**
 * Node's internal TCP handle (the `tcp_wrap` binding). An AF_VSOCK fd opened into it runs on
 * libuv's loop like any stream socket: uv_tcp_open, uv_listen, uv_accept, uv_read and uv_write
 * never look at the address family. See the README, "Why tcp_wrap is sound".
 */
export interface TcpHandle {
  open(fd: number): number
  close(callback?: () => void): void
  readonly fd: number
}

interface TcpWrapBinding {
  TCP: new (type: number) => TcpHandle
  constants: { SOCKET: number; SERVER: number }
}

let binding: TcpWrapBinding | undefined

function tcpWrap(): TcpWrapBinding {
  if (!binding) {
    // process.binding('tcp_wrap') returns internalBinding('tcp_wrap'), the same object net.js uses,
    // so `instanceof TCP` checks inside net.Server.listen(handle) hold. DEP0111 is documentation-only
    // for this module (no runtime warning unless --pending-deprecation).
    const legacy = (process as unknown as { binding(name: string): TcpWrapBinding }).binding
    binding = legacy.call(process, 'tcp_wrap')
  }
  return binding
}

/** A server-mode TCP handle owning `fd`, or -errno (the fd is then still the caller's). */
export function serverHandle(fd: number): TcpHandle | number {
  const { TCP, constants } = tcpWrap()
  const handle = new TCP(constants.SERVER)
  const err = handle.open(fd)
  if (err !== 0) {
    handle.close()
    return err
  }
  return handle
}

/** A socket-mode TCP handle owning `fd`, or -errno (the fd is then still the caller's). */
export function socketHandle(fd: number): TcpHandle | number {
  const { TCP, constants } = tcpWrap()
  const handle = new TCP(constants.SOCKET)
  const err = handle.open(fd)
  if (err !== 0) {
    handle.close()
    return err
  }
  return handle
}
