/**
 * The CLI's long-running commands (`xenstack server`, `xenstack start`) as real child processes: started, their
 * output collected, and gone after the test whatever it asserted.
 */
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import type { Readable } from 'node:stream'
import { cliBin } from './run.js'

export interface CliJob {
  child: ChildProcessByStdio<null, Readable, Readable>
  /** The exit code (null after a signal). */
  exited: Promise<number | null>
  stdout(): string
  stderr(): string
  /** Both streams as they came. */
  output(): string
}

/**
 * `xenstack ARGS` as a child process with `env` over this process's environment. A job still running after the test
 * gets `afterSignal` (default SIGKILL), and the test's end waits for its exit.
 */
export function spawnCliJob(
  t: TestContext,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; afterSignal?: NodeJS.Signals } = {},
): CliJob {
  const child = spawn(process.execPath, [cliBin, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  let all = ''
  child.stdout.on('data', (b: Buffer) => ((out += b), (all += b)))
  child.stderr.on('data', (b: Buffer) => ((err += b), (all += b)))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(opts.afterSignal ?? 'SIGKILL')
      await exited
    }
  })
  return { child, exited, stdout: () => out, stderr: () => err, output: () => all }
}

/**
 * A job started with `--json`, once it is up: such a command prints one JSON document on stdout when everything
 * is up, and nothing before it. Fails when the job exits first or prints no document within `readyMs`.
 */
export async function startCliJob<T>(
  t: TestContext,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; afterSignal?: NodeJS.Signals; readyMs: number },
): Promise<CliJob & { ready: T }> {
  const job = spawnCliJob(t, args, opts)
  const what = `xenstack ${args[0]}`
  const deadline = Date.now() + opts.readyMs
  for (;;) {
    try {
      return { ...job, ready: JSON.parse(job.stdout()) as T }
    } catch {
      if (job.child.exitCode !== null || job.child.signalCode !== null)
        assert.fail(`${what} exited ${job.child.exitCode ?? job.child.signalCode}: ${job.output()}`)
      if (Date.now() > deadline) assert.fail(`${what} printed no JSON in ${opts.readyMs / 1000} s: ${job.output()}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
