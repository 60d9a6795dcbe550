// The benchmark's target server, run in its own process so it does not share an event loop with
// the client. One port, two behaviours chosen by the first byte a connection sends:
//   'S' sink: count every following byte; on the client's FIN reply with the count (u64 BE) and end
//   'E' echo: send every following byte back
import net from 'node:net'

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
  socket.on('error', () => {})
  socket.once('readable', function start() {
    const first = socket.read(1)
    if (first === null) {
      socket.once('readable', start)
      return
    }
    if (first[0] === 0x53) {
      let count = 0
      socket.on('data', (chunk) => {
        count += chunk.length
      })
      socket.on('end', () => {
        const reply = Buffer.alloc(8)
        reply.writeBigUInt64BE(BigInt(count))
        socket.end(reply)
      })
    } else {
      socket.pipe(socket)
    }
  })
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`)
})
process.on('SIGTERM', () => process.exit(0))
