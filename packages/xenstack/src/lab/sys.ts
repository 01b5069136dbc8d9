/**
 * Small process helpers for the lab: run a command and collect its output, start a detached daemon
 * with its output in a log file, wait for a condition. Every failure names the command and shows the
 * end of its stderr.
 */
import { spawn } from 'node:child_process'
import { openSync, closeSync, readFileSync } from 'node:fs'

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

export interface RunOptions {
  stdin?: string | Buffer
  env?: NodeJS.ProcessEnv
  cwd?: string
  timeoutMs?: number
  /** Exit codes that are not an error (default [0]); ignored by `run`, used by `runOk`. */
  allowedExitCodes?: number[]
}

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly result: RunResult,
    context?: string,
  ) {
    const tail = result.stderr.trim().split('\n').slice(-5).join('\n')
    super(
      `${context ? context + ': ' : ''}command failed with exit code ${result.code}: ${argv.join(' ')}` +
        (tail ? `\n${tail}` : ''),
    )
    this.name = 'CommandError'
  }
}

/** Runs argv and resolves with its exit code and output; never rejects on a non-zero exit. */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        err.push(Buffer.from(`\n[lab] killed after ${opts.timeoutMs} ms\n`))
        child.kill('SIGKILL')
      }, opts.timeoutMs)
    }
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => {
      if (timer) clearTimeout(timer)
      reject(new Error(`cannot run ${argv[0]}: ${e.message}`))
    })
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      resolve({
        code: code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(opts.stdin ?? '')
  })
}

/** Like `run`, but rejects with a CommandError unless the exit code is allowed. */
export async function runOk(argv: string[], opts: RunOptions = {}, context?: string): Promise<RunResult> {
  const r = await run(argv, opts)
  if (!(opts.allowedExitCodes ?? [0]).includes(r.code)) throw new CommandError(argv, r, context)
  return r
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  const table: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }
  return table[signal]
}

/**
 * Starts argv detached from this process (own process group, no pipes) with stdout/stderr appended to
 * `logFile`, so it keeps running when the caller exits. Returns its PID. With `nsenter`/`ip netns exec`
 * /`unshare` (which exec), the PID is the daemon's own.
 */
export function startDaemon(argv: string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const fd = openSync(logFile, 'a')
  try {
    const child = spawn(argv[0], argv.slice(1), {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: env ?? process.env,
      cwd: '/',
    })
    child.on('error', () => {})
    child.unref()
    if (!child.pid) throw new Error(`cannot start ${argv.join(' ')} (see ${logFile})`)
    return child.pid
  } finally {
    closeSync(fd)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `check` every 20 ms until it returns true; rejects with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await check()) return
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}

/** True while the process exists and is not a zombie (an exited child its parent has not reaped yet). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
  const stat = procStat(pid)
  return stat !== undefined && stat.state !== 'Z'
}

/**
 * A process's state (field 3 of /proc/<pid>/stat: R, S, D, Z, …) and start time (field 22, clock ticks since boot,
 * which tells a pid's process from a later one reusing the pid); undefined once the pid is gone.
 */
export function procStat(pid: number): { state: string; startTime: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // after the ")" closing the command name (which may itself hold spaces or parentheses): field 3 onwards
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0]!, startTime: fields[19]! }
  } catch {
    return undefined
  }
}

/** The process's command line, or undefined when it is gone. */
export function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()
  } catch {
    return undefined
  }
}
