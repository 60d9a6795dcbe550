import { type ChildProcess, spawn } from 'node:child_process'

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Runs a built CLI (a path to its JS entry) with the current Node and collects its output.
 * Kills it after `timeoutMs` so that a hung CLI fails the test instead of hanging it. `onSpawn`
 * sees the child process (to watch it while it runs).
 */
export function runCli(
  entry: string,
  args: readonly string[],
  {
    timeoutMs = 20_000,
    env,
    input,
    cwd,
    onSpawn,
  }: {
    timeoutMs?: number
    env?: NodeJS.ProcessEnv
    input?: string | Buffer
    cwd?: string
    onSpawn?: (child: ChildProcess) => void
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry, ...args], {
      env: env ?? process.env,
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    onSpawn?.(child)
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      })
    })
    child.stdin.end(input)
  })
}
