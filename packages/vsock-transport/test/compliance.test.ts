import { isIPv6 } from 'node:net'
import { join } from 'node:path'
import { makeTempDir } from '@enclave/test-helpers'
import { expect } from 'vitest'
import type { TransportAddress } from '../src/index.js'
import { transportSuite } from './compliance/suite.js'
import { type FakeMux, startFakeMux } from './fake-mux.js'

let temp: ReturnType<typeof makeTempDir> | undefined
let counter = 0
const tempDir = () => {
  temp = makeTempDir('vt-')
  return temp.path
}
const removeTemp = () => {
  temp?.remove()
  temp = undefined
}

transportSuite({
  name: 'tcp (IPv4)',
  makeAddress: () => 'tcp://127.0.0.1:0',
  checkServerPeer: (peer, client) => {
    expect(peer).toEqual({ scheme: 'tcp', host: '127.0.0.1', port: client.localPort })
  },
})

transportSuite({
  name: 'tcp (IPv6)',
  makeAddress: () => 'tcp://[::1]:0',
  checkServerPeer: (peer) => {
    const p = peer as Extract<TransportAddress, { scheme: 'tcp' }>
    expect(p.scheme).toBe('tcp')
    expect(isIPv6(p.host)).toBe(true)
  },
})

transportSuite({
  name: 'unix',
  setup: () => void tempDir(),
  teardown: removeTemp,
  makeAddress: () => `unix://${join(temp!.path, `s${counter++}.sock`)}`,
  checkServerPeer: (peer) => expect(peer).toBeUndefined(),
})

transportSuite({
  name: 'vsock (dev mode)',
  setup: () => void tempDir(),
  teardown: removeTemp,
  makeAddress: () => 'vsock://any:0',
  listenOptions: {
    get dev() {
      return { dir: temp!.path, cid: 16 }
    },
  },
  connectOptions: {
    get dev() {
      return { dir: temp!.path }
    },
  },
  checkServerPeer: (peer) => expect(peer).toBeUndefined(),
})

let mux: FakeMux | undefined
transportSuite({
  name: 'hvsock (fake Firecracker multiplexer)',
  setup: async () => {
    mux = await startFakeMux(join(tempDir(), 'v.sock'))
  },
  teardown: async () => {
    await mux?.close()
    removeTemp()
  },
  makeAddress: () => `hvsock://${join(temp!.path, 'v.sock')}:0`,
  checkServerPeer: (peer) => expect(peer).toBeUndefined(),
})
