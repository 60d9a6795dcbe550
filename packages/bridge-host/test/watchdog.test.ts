import { once } from 'node:events'
import {
  type BridgeSession,
  connectBridge,
  EnclaveIdMismatchError as EnclaveSideMismatch,
  HeartbeatTimeoutError as EnclaveSideTimeout,
  encodeHeartbeat,
} from '@enclave/bridge-enclave'
import { waitFor } from '@enclave/test-helpers'
import { connect } from '@enclave/vsock-transport'
import { afterEach, describe, expect, it } from 'vitest'
import { type BridgeHost, EnclaveIdMismatchError, HeartbeatTimeoutError } from '../src/index.js'
import { devWorld, settings, startHost } from './helpers.js'

let world: ReturnType<typeof devWorld>
let host: BridgeHost | undefined
const sessions: BridgeSession[] = []

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close()
  await host?.close({ drainTimeoutMs: 0 })
  host = undefined
  world?.remove()
})

/** For tests about detecting loss: short, and they assert only what load cannot change. */
const LOSS_INTERVAL = 400
/** For everything else: long enough that no timer fires however loaded the machine is. */
const CALM_INTERVAL = 60_000

/** Records the order of host events. */
function journal(h: BridgeHost): string[] {
  const events: string[] = []
  h.on('ready', () => events.push('ready'))
  h.on('heartbeat', () => {
    if (events.at(-1) !== 'heartbeat') events.push('heartbeat')
  })
  h.on('failure', (err) => events.push(`failure:${err.code}`))
  return events
}

async function handshake(
  enclaveId: string,
  watchdog: boolean,
  intervalMs = CALM_INTERVAL,
): Promise<BridgeSession> {
  const hs = await connectBridge({ dev: world.enclaveDev })
  const session = await hs.finish(settings({ watchdog: { enclaveId, intervalMs } }), { watchdog })
  sessions.push(session)
  return session
}

describe('watchdog', () => {
  it('keeps a session alive while both sides beat, through ids that contain 0x0A', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const events = journal(host)
    // Go's line-based reader breaks on this id: every one of its 16 bytes is 0x0A.
    // A roomy interval: this test asserts that nothing fails, so a loaded machine must not flake it.
    const session = await handshake('0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a', true, 2000)
    let enclaveBeats = 0
    session.watchdog?.on('heartbeat', () => enclaveBeats++)
    await new Promise((r) => setTimeout(r, 3000))
    expect(host.state).toBe('running')
    expect(events[0]).toBe('ready')
    expect(events).toContain('heartbeat')
    expect(events.some((e) => e.startsWith('failure'))).toBe(false)
    expect(enclaveBeats).toBeGreaterThan(0)
    expect(session.watchdog?.state).toBe('running')
  })

  it('detects heartbeat loss within one interval and fails (exit mode)', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const events = journal(host)
    const failure = once(host, 'failure')
    await handshake(crypto.randomUUID(), false, LOSS_INTERVAL)
    const [err] = await failure
    expect(err).toBeInstanceOf(HeartbeatTimeoutError)
    expect(err.message).toMatch(`within ${LOSS_INTERVAL} ms`)
    expect(events).toContain('ready')
    expect(events.at(-1)).toBe('failure:ENCLAVE_BRIDGE_HOST_HEARTBEAT_TIMEOUT')
    expect(events.filter((e) => e.startsWith('failure'))).toHaveLength(1)
    expect(host.state).toBe('failed')
  })

  it('detects loss after beats stop, then waits for a new handshake (wait mode)', async () => {
    world = devWorld()
    ;({ host } = await startHost(world, { onWatchdogFailure: 'wait' }))
    const events = journal(host)
    const failure = once(host, 'failure')
    const session = await handshake(crypto.randomUUID(), true, LOSS_INTERVAL)
    session.close() // the enclave stops beating
    const [err] = await failure
    // Under load the loss may be seen before or after a first beat: assert only the final facts.
    expect(err).toBeInstanceOf(HeartbeatTimeoutError)
    expect(events).toContain('ready')
    expect(events.at(-1)).toBe('failure:ENCLAVE_BRIDGE_HOST_HEARTBEAT_TIMEOUT')
    await waitFor(() => host?.state === 'waiting', { what: 'the host to wait for a new handshake' })
    await handshake(crypto.randomUUID(), true)
    expect(host.state).toBe('running')
  })

  it('fails on a heartbeat carrying another enclave id', async () => {
    world = devWorld()
    ;({ host } = await startHost(world, { onWatchdogFailure: 'wait' }))
    await handshake(crypto.randomUUID(), false)
    const failure = once(host, 'failure')
    const intruder = await connect('vsock://3:5000', { dev: world.enclaveDev })
    intruder.on('error', () => {})
    intruder.write(encodeHeartbeat(crypto.randomUUID()))
    const [err] = await failure
    expect(err).toBeInstanceOf(EnclaveIdMismatchError)
    intruder.destroy()
  })

  it('the enclave side gets an event when the host stops beating', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const session = await handshake(crypto.randomUUID(), true, LOSS_INTERVAL)
    await once(session.watchdog as NonNullable<BridgeSession['watchdog']>, 'heartbeat')
    const failure = once(session.watchdog as NonNullable<BridgeSession['watchdog']>, 'failure')
    await host.close({ drainTimeoutMs: 0 })
    host = undefined
    const [err] = await failure
    expect(err).toBeInstanceOf(EnclaveSideTimeout)
    expect(session.watchdog?.state).toBe('failed')
  })

  it('the enclave side fails on a host that beats with another id', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const id = crypto.randomUUID()
    await handshake(id, false)
    // A second enclave's watchdog with a different id against the same host: the host answers with
    // the first id, so this watchdog must report a mismatch (and the host one too).
    const { EnclaveWatchdog } = await import('@enclave/bridge-enclave')
    const dog = new EnclaveWatchdog({
      enclaveId: crypto.randomUUID(),
      intervalMs: CALM_INTERVAL,
      hostCid: 3,
      port: 5000,
      dev: world.enclaveDev,
    })
    const [err] = await once(dog, 'failure')
    expect(err).toBeInstanceOf(EnclaveSideMismatch)
    dog.stop()
  })
})

describe('Go enclave ordering', () => {
  it('a watchdog connection opened before the final ACK (as Go does) is taken as one', async () => {
    world = devWorld()
    ;({ host } = await startHost(world))
    const errors: unknown[] = []
    host.on('handshakeError', (e) => errors.push(e))
    const { SocketReader, settingsToJson } = await import('@enclave/bridge-enclave')
    const id = crypto.randomUUID()
    const hsSocket = await connect('vsock://3:5000', { dev: world.enclaveDev })
    const reader = new SocketReader(hsSocket)
    hsSocket.write(Buffer.from([0x06, 0x0a]))
    await reader.readLine(1024)
    // Go's FinishHandshakeAndWait starts its watchdog while the handshake is still open; here the
    // heartbeat even arrives before the settings, the worst case.
    const dog = await connect('vsock://3:5000', { dev: world.enclaveDev })
    dog.on('error', () => {})
    dog.write(encodeHeartbeat(id))
    await new Promise((r) => setTimeout(r, 100))
    hsSocket.write(
      `${JSON.stringify(settingsToJson(settings({ watchdog: { enclaveId: id, intervalMs: 5000 } })))}\n`,
    )
    await once(host, 'heartbeat')
    expect(errors).toEqual([])
    expect(host.state).toBe('running')
    hsSocket.destroy()
    dog.destroy()
  })
})
