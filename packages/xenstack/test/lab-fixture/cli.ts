// The xenstack CLI run as an operator runs it: a child process of `node dist/src/cli/main.js` with XENSTACK_HOME set,
// its whole output kept, its `--json` summary parsed. Used by the tests that drive deployments through the CLI.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

export interface CliRun {
  args: string[]
  /** The exit code; 1 when the process ended on a signal (see `signal`). */
  code: number
  signal: NodeJS.Signals | null
  /** The child's pid (a crash test matches its own log lines to it). */
  pid: number
  stdout: string
  stderr: string
  /** The JSON object `--json` prints on stdout (possibly over several lines), if there is one. */
  json?: any
  /** Wall time of the run. */
  ms: number
  /** Killed by `timeoutMs` (a hang guard, not an assertion on speed). */
  timedOut: boolean
}

export interface CliOptions {
  /** Written to the child's stdin, which is then closed (default: nothing). */
  stdin?: string
  /** Added to (or replacing) the child's environment, after XENSTACK_HOME. */
  env?: Record<string, string>
  /** The child is killed (SIGKILL) after this long: a hang guard. Default 10 min. */
  timeoutMs?: number
  /** Polled every 2 ms until it kills the child, with the child's pid and a kill function (crash tests). */
  watch?: (pid: number, kill: () => void) => void
}

/** Runs `xenstack <args>` with XENSTACK_HOME=`home`; never rejects for a failing command (see `code`). */
export function xenstack(home: string, args: string[], opts: CliOptions = {}): Promise<CliRun> {
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, XENSTACK_HOME: home, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    child.stdin.on('error', () => {}) // a child that exits without reading its stdin
    child.stdin.end(opts.stdin ?? '')
    let killed = false
    let timedOut = false
    const kill = () => {
      killed = true
      child.kill('SIGKILL')
    }
    const timer = opts.watch ? setInterval(() => killed || opts.watch!(child.pid!, kill), 2) : undefined
    const deadline = setTimeout(() => {
      timedOut = true
      kill()
    }, opts.timeoutMs ?? 600_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (timer) clearInterval(timer)
      clearTimeout(deadline)
      let json: any
      try {
        json = JSON.parse(stdout.slice(stdout.indexOf('{')))
      } catch {
        json = undefined
      }
      resolve({
        args,
        code: code ?? 1,
        signal,
        pid: child.pid!,
        stdout,
        stderr,
        json,
        ms: Math.round(performance.now() - t0),
        timedOut,
      })
    })
  })
}

/** The end of a run's output, for an assertion message. */
export const tail = (r: CliRun, stdoutChars = 4000, stderrChars = 2000): string =>
  `${r.timedOut ? `(killed after its ${r.ms} ms hang guard)\n` : ''}${r.stdout.slice(-stdoutChars)}\n${r.stderr.slice(-stderrChars)}`
