import { Writable } from 'node:stream'
import { makeTempDir } from '@enclave/test-helpers'
import { afterAll, describe, expect, it } from 'vitest'
import {
  createSupervisor,
  EXIT_FATAL,
  EXIT_INTERRUPTED,
  type LaunchedEnclave,
  type Launcher,
  runEnclave,
  SimulatorLauncher,
  type Supervisor,
} from '../src/index.js'

const temp = makeTempDir('odyn-launch-')
afterAll(() => temp.remove())

/** A launcher that runs the supervisor in this process: the host half is the code under test. */
function inProcessLauncher(command: string[], events: string[]): Launcher {
  let odyn: Supervisor | undefined
  return {
    kind: 'in-process',
    async launch() {
      events.push('launch')
      const dev = { dir: temp.path, cid: 21 }
      odyn = createSupervisor({ command, user: null, dev, graceMs: 2000 })
      await odyn.start()
      return { id: 'in-process', cid: 21, dev, gone: new Promise<string>(() => {}) }
    },
    async terminate(_enclave: LaunchedEnclave) {
      events.push('terminate')
      await odyn?.shutdown('SIGTERM')
    },
  }
}

const collect = () => {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk)
      cb()
    },
  })
  return { sink, text: () => Buffer.concat(chunks).toString() }
}

describe('runEnclave (host side, the same for every launcher)', () => {
  it('starts host plug-ins around the launch, streams logs, maps the exit code, terminates', async () => {
    const events: string[] = []
    const { sink, text } = collect()
    const result = await runEnclave({
      launcher: inProcessLauncher(['sh', '-c', 'echo from-app; exit 4'], events),
      logSink: sink,
      hostPlugins: [
        {
          name: 'egress',
          phase: 'before-launch',
          async start(ctx) {
            events.push(`egress:${ctx.enclave === undefined}`)
            return { stop: async () => void events.push('egress-stop') }
          },
        },
        {
          name: 'ingress',
          phase: 'after-launch',
          async start(ctx) {
            events.push(`ingress:${ctx.enclave?.cid}`)
            return { stop: async () => void events.push('ingress-stop') }
          },
        },
      ],
    })
    expect(result).toEqual({ exitCode: 4, status: { status: 'exited', code: 4 }, reason: 'final' })
    expect(text()).toContain('from-app\n')
    expect(events).toEqual([
      'egress:true',
      'launch',
      'ingress:21',
      'terminate',
      'ingress-stop',
      'egress-stop',
    ])
  })

  it('an abort (host SIGINT/SIGTERM) gives 109 and still terminates', async () => {
    const events: string[] = []
    const abort = new AbortController()
    setTimeout(() => abort.abort(), 300)
    const result = await runEnclave({
      launcher: inProcessLauncher(['sleep', '30'], events),
      logSink: collect().sink,
      signal: abort.signal,
    })
    expect(result.exitCode).toBe(EXIT_INTERRUPTED)
    expect(events).toEqual(['launch', 'terminate'])
  })

  it('an enclave that vanishes without a final status gives 108', async () => {
    // "odyn" here is a shell that exits at once: the simulator reports it gone.
    const launcher = new SimulatorLauncher({
      odyn: ['sh', '-c', 'exit 3', 'odyn'],
      configDir: temp.path,
      app: ['true'],
    })
    const result = await runEnclave({ launcher, logSink: collect().sink, statusAttempts: 1000 })
    expect(result).toMatchObject({ exitCode: EXIT_FATAL, reason: 'gone' })
  })
})
