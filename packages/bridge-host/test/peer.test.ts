import { once } from 'node:events'
import type { Socket } from 'node:net'
import { type BridgeSession, connectBridge, encodeHeartbeat, MissingAckError } from '@enclave/bridge-enclave'
import { waitFor } from '@enclave/test-helpers'
import { connect } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type BridgeHost,
  type BridgeHostOptions,
  type HandshakeFailedError,
  MAX_WATCHDOG_CHANNELS,
} from '../src/index.js'
import { fromSessionEnclave, serverCidAllowed } from '../src/peer-policy.js'
import { devWorld, ENCLAVE_CID, settings, startHost } from './helpers.js'

let world: ReturnType<typeof devWorld>
let host: BridgeHost | undefined
const sockets: Socket[] = []
const sessions: BridgeSession[] = []

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close()
  for (const s of sockets.splice(0)) s.destroy()
  await host?.close({ drainTimeoutMs: 0 })
  host = undefined
  world?.remove()
})

/** Resolves when the socket closes (events.once would reject on the EPIPE of a refused write). */
function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve())))
}

describe('peer CID policy (pure)', () => {
  it('servers[].enclaveCid must be the handshake peer, unless allowed; dev mode passes', () => {
    expect(serverCidAllowed(16, 16, [])).toBe(true)
    expect(serverCidAllowed(17, 16, [])).toBe(false)
    expect(serverCidAllowed(17, 16, [17])).toBe(true)
    // Dev mode has no peer CID: nothing to compare, unless the operator listed CIDs.
    expect(serverCidAllowed(17, undefined, [])).toBe(true)
    expect(serverCidAllowed(17, undefined, [16])).toBe(false)
    expect(serverCidAllowed(16, undefined, [16])).toBe(true)
  })

  it('only the session enclave (or an allowed CID) may use the handshake port while it runs', () => {
    expect(fromSessionEnclave(16, 16, [])).toBe(true)
    expect(fromSessionEnclave(17, 16, [])).toBe(false)
    expect(fromSessionEnclave(17, 16, [17])).toBe(true)
    expect(fromSessionEnclave(undefined, 16, [])).toBe(false)
    expect(fromSessionEnclave(undefined, undefined, [])).toBe(true)
  })
})

/**
 * Dev mode gives no peer CIDs, so these tests inject the source: each accepted connection takes
 * the next CID from a queue (connections are made one at a time, so accept order is known).
 */
async function hostWithCids(options: BridgeHostOptions = {}) {
  world = devWorld()
  const cids: number[] = []
  ;({ host } = await startHost(world, options, { peerCidOf: () => cids.shift() ?? ENCLAVE_CID }))
  const errors: HandshakeFailedError[] = []
  host.on('handshakeError', (e) => errors.push(e))
  return { h: host, cids, errors }
}

async function handshake(enclaveId = crypto.randomUUID()): Promise<BridgeSession> {
  const hs = await connectBridge({ dev: world.enclaveDev })
  const session = await hs.finish(settings({ watchdog: { enclaveId, intervalMs: 60_000 } }), {
    watchdog: false,
  })
  sessions.push(session)
  return session
}

async function rawSettings(enclaveCid: number): Promise<Promise<unknown>> {
  const hs = await connectBridge({ dev: world.enclaveDev })
  return hs
    .finish(settings({ servers: [{ enclaveCid, enclaveListenPort: 5001, bridgeTcpPort: 65535 }] }), {
      watchdog: false,
    })
    .catch((e) => e)
}

describe('peer CID checks (injected CIDs)', () => {
  it('refuses settings that point a server tunnel at another CID; allowEnclaveCids overrides', async () => {
    const { h, cids, errors } = await hostWithCids()
    cids.push(16)
    expect(await rawSettings(17)).toBeInstanceOf(MissingAckError)
    await waitFor(() => errors.length === 1, { what: 'the handshake error' })
    expect(errors[0]?.step).toBe('settings')
    expect(errors[0]?.message).toMatch(
      /servers\[0\]\.enclaveCid 17 is not the CID this enclave connected from \(16\)/,
    )
    expect(h.state).toBe('waiting')
    await h.close({ drainTimeoutMs: 0 })

    const allowed = await hostWithCids({ allowEnclaveCids: [17] })
    allowed.cids.push(16)
    let ready = false
    allowed.h.once('ready', () => {
      ready = true
    })
    const result = await rawSettings(17)
    if (!(result instanceof Error)) sessions.push(result as BridgeSession)
    // Past the CID check: ready, or (if another process took TCP port 65535) the apply step.
    await waitFor(() => ready || allowed.errors.length > 0, { what: 'the handshake outcome' })
    expect(allowed.errors.filter((e) => e.step !== 'apply')).toEqual([])
  })

  it('while a session runs, another CID cannot hand-shake over it; the same CID can', async () => {
    const { h, cids, errors } = await hostWithCids()
    const first = crypto.randomUUID()
    cids.push(16)
    await handshake(first)
    expect(h.stats().session?.enclaveId).toBe(first)

    cids.push(17)
    const hs = await connectBridge({ dev: world.enclaveDev, maxAttempts: 1 }).catch((e) => e)
    // The host refuses before sending the environment: the intruder sees the connection close.
    expect(hs).toBeInstanceOf(Error)
    await waitFor(() => errors.length === 1, { what: 'the refusal' })
    expect(errors[0]?.step).toBe('ack')
    expect(errors[0]?.message).toMatch(/CID 17 refused: a session with the enclave at CID 16 is running/)
    expect(h.stats().session?.enclaveId).toBe(first)
    expect(h.state).toBe('running')

    // The enclave restarting on its own CID replaces the session.
    cids.push(16)
    const second = crypto.randomUUID()
    await handshake(second)
    expect(h.stats().session?.enclaveId).toBe(second)
  })

  it('a wrong id from a non-session CID closes that connection only; from the session CID it fails', async () => {
    const { h, cids } = await hostWithCids({ allowEnclaveCids: [17], onWatchdogFailure: 'wait' })
    const failures: unknown[] = []
    h.on('failure', (e) => failures.push(e))
    cids.push(16)
    await handshake()

    cids.push(17)
    const other = await connect('vsock://3:5000', { dev: world.enclaveDev })
    sockets.push(other)
    other.on('error', () => {})
    other.resume()
    other.write(encodeHeartbeat(crypto.randomUUID()))
    await closed(other)
    expect(failures).toEqual([])
    expect(h.state).toBe('running')

    // Not even allowed: refused before its bytes are read.
    await h.close({ drainTimeoutMs: 0 })
    const strict = await hostWithCids({ onWatchdogFailure: 'wait' })
    const strictFailures: unknown[] = []
    strict.h.on('failure', (e) => strictFailures.push(e))
    strict.cids.push(16)
    await handshake()
    strict.cids.push(18)
    const stranger = await connect('vsock://3:5000', { dev: world.enclaveDev })
    sockets.push(stranger)
    stranger.on('error', () => {})
    stranger.resume()
    stranger.write(encodeHeartbeat(crypto.randomUUID()))
    await closed(stranger)
    expect(strictFailures).toEqual([])
    expect(strict.h.state).toBe('running')

    // The session's own CID with a wrong id is Go's "enclave ID mismatch": the session fails.
    strict.cids.push(16)
    const own = await connect('vsock://3:5000', { dev: world.enclaveDev })
    sockets.push(own)
    own.on('error', () => {})
    const failed = once(strict.h, 'failure')
    own.write(encodeHeartbeat(crypto.randomUUID()))
    const [err] = await failed
    expect((err as { code: string }).code).toBe('ENCLAVE_BRIDGE_HOST_ID_MISMATCH')
  })
})

describe('watchdog channel cap (dev mode, end to end)', () => {
  it(`keeps at most ${MAX_WATCHDOG_CHANNELS} watchdog connections per session`, async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const enclaveId = crypto.randomUUID()
    await handshake(enclaveId)
    const record = encodeHeartbeat(enclaveId)
    const outcomes: string[] = []
    for (let i = 0; i < MAX_WATCHDOG_CHANNELS + 2; i++) {
      const s = await connect('vsock://3:5000', { dev: world.enclaveDev })
      sockets.push(s)
      s.on('error', () => {})
      s.write(record)
      // A channel answers with the host's own record at once; a refused one is closed unanswered.
      outcomes.push(
        await new Promise<string>((resolve) => {
          s.once('data', () => resolve('channel'))
          s.once('close', () => resolve('refused'))
        }),
      )
    }
    expect(outcomes).toEqual([
      ...Array.from({ length: MAX_WATCHDOG_CHANNELS }, () => 'channel'),
      'refused',
      'refused',
    ])
    expect(host.state).toBe('running')
  })
})
