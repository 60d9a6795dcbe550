import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { type CliResult, makeTempDir, peakRssOf, runCli, sha256OfFile, waitFor } from '@enclave/test-helpers'
import { afterAll, describe, expect, it } from 'vitest'

// Files stream with constant memory: a 4 GiB file goes there and back through the real CLI, and
// each process's peak RSS stays under 200 MiB (the bound), whatever the file size.
const MIB = 1 << 20
const SIZE = 4 * 1024 * MIB
const RSS_LIMIT = 200 * MIB

const bin = new URL('../dist/main.js', import.meta.url).pathname
const temp = makeTempDir('pipeline-memory-')
const env = { ...process.env, XDG_CONFIG_HOME: join(temp.path, 'cfg') }
afterAll(() => temp.remove())

/**
 * A 4 GiB file that costs almost nothing to make: sparse, with a distinct 4 KiB stamp at the start
 * of every MiB, so a lost, repeated or reordered chunk changes its SHA-256.
 */
function writeStampedSparseFile(path: string, size: number): void {
  const fd = openSync(path, 'w')
  try {
    ftruncateSync(fd, size)
    for (let offset = 0; offset < size; offset += MIB) {
      const digest = createHash('sha256')
        .update(`MiB ${offset / MIB}`)
        .digest()
      writeSync(fd, Buffer.concat(Array.from({ length: 128 }, () => digest)), 0, 4096, offset)
    }
  } finally {
    closeSync(fd)
  }
}

/** Polls a process's VmHWM (monotonic) until it exits: the last sample is its peak. */
function trackPeak(child: ChildProcess): { peak: () => number; stop: () => void } {
  let peak = 0
  const sample = () => {
    peak = Math.max(peak, peakRssOf(child.pid!) ?? 0)
  }
  const timer = setInterval(sample, 50)
  return {
    peak: () => {
      sample()
      return peak
    },
    stop: () => clearInterval(timer),
  }
}

async function runMeasured(args: string[]): Promise<CliResult & { peakRss: number }> {
  let tracker: ReturnType<typeof trackPeak> | undefined
  const result = await runCli(bin, args, {
    env,
    timeoutMs: 240_000,
    onSpawn: (child) => {
      tracker = trackPeak(child)
    },
  })
  tracker!.stop()
  return { ...result, peakRss: tracker!.peak() }
}

describe('a 4 GiB file through the pipeline CLI', () => {
  it('goes there and back intact with every process under 200 MiB of RSS', async () => {
    const root = join(temp.path, 'root')
    const source = join(temp.path, 'source.bin')
    const back = join(temp.path, 'back.bin')
    const address = `unix://${join(temp.path, 'p.sock')}`
    mkdirSync(root)
    writeStampedSparseFile(source, SIZE)
    const expected = await sha256OfFile(source)

    const server = spawn(process.execPath, [bin, 'listen', '--dev', '--addr', address, '--root', root], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const serverPeak = trackPeak(server)
    let serverOut = ''
    server.stdout!.on('data', (chunk: Buffer) => {
      serverOut += chunk
    })
    let serverErr = ''
    server.stderr!.on('data', (chunk: Buffer) => {
      serverErr += chunk
    })
    try {
      await waitFor(() => serverOut.includes('"listening"') || server.exitCode !== null, {
        timeoutMs: 20_000,
        what: 'the listener',
      })
      expect(server.exitCode, serverErr).toBe(null)
      const sent = await runMeasured([
        'send-file',
        '--dev',
        '--addr',
        address,
        '--localpath',
        source,
        '--remotepath',
        'big.bin',
      ])
      expect(sent.code, sent.stderr).toBe(0)
      expect(JSON.parse(sent.stdout)).toEqual({ size: SIZE, sha256: expected })
      expect(statSync(join(root, 'big.bin')).size).toBe(SIZE)

      const received = await runMeasured([
        'recv-file',
        '--dev',
        '--addr',
        address,
        '--remotepath',
        'big.bin',
        '--localpath',
        back,
      ])
      expect(received.code, received.stderr).toBe(0)
      expect(JSON.parse(received.stdout)).toEqual({ size: SIZE, sha256: expected })
      expect(await sha256OfFile(back)).toBe(expected)
      expect(readdirSync(root).filter((name) => name.endsWith('.tmp'))).toEqual([])

      const peaks = { sender: sent.peakRss, receiver: received.peakRss, server: serverPeak.peak() }
      for (const [role, bytes] of Object.entries(peaks)) {
        expect(bytes, `${role} peak RSS ${(bytes / MIB).toFixed(0)} MiB`).toBeGreaterThan(10 * MIB)
        expect(bytes, `${role} peak RSS ${(bytes / MIB).toFixed(0)} MiB`).toBeLessThan(RSS_LIMIT)
      }
    } finally {
      serverPeak.stop()
      server.kill('SIGTERM')
      // 8 GiB of real data on a shared disk: remove it now rather than at the end of the run.
      for (const path of [source, back, join(root, 'big.bin')]) rmSync(path, { force: true })
    }
  }, 300_000)
})
