/**
 * Runs commands on this machine, optionally behind a prefix (e.g. `nsenter -t <pid> -m -u -n --` to act inside a
 * namespace). Same semantics as the SSH executor: the command line goes through `sh -c`.
 */
import { spawn } from 'node:child_process'
import type { Readable } from 'node:stream'
import { type RawResult, ShellLineExecutor, collectOutput, feedStdin } from './executor.js'

export interface LocalExecutorOptions {
  /** Name shown in errors and logs (default `local`). */
  name?: string
  /** argv prefix placed before `sh -c <line>`, e.g. `['nsenter', '-t', '1234', '-m', '-u', '-n', '--']`. */
  prefix?: readonly string[]
}

export class LocalExecutor extends ShellLineExecutor {
  readonly host: string
  readonly #prefix: readonly string[]

  constructor(options: LocalExecutorOptions = {}) {
    super()
    this.host = options.name ?? 'local'
    this.#prefix = options.prefix ?? []
  }

  async #spawn(
    line: string,
    shown: string,
    stdin: Buffer | Readable | undefined,
    timeoutMs: number | undefined,
  ): Promise<RawResult> {
    const argv = [...this.#prefix, 'sh', '-c', line]
    // Its own process group, so a timeout kills the command's children too (not just `sh`).
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
    const done = collectOutput(child, this.host, shown, timeoutMs, {
      kill: () => {
        try {
          process.kill(-(child.pid ?? 0), 'SIGKILL')
        } catch {
          child.kill('SIGKILL')
        }
      },
      failed: (e) => new Error(`${this.host}: cannot start ${argv[0]}: ${e.message}`),
      noExitCode: 1,
    })
    child.stdin.on('error', () => {
      /* the command may exit without reading its input */
    })
    feedStdin(child.stdin, stdin)
    return done
  }

  protected runLine(line: string, shown: string, stdin: Buffer | undefined, timeoutMs: number | undefined) {
    return this.#spawn(line, shown, stdin, timeoutMs)
  }

  protected transferLine(line: string, shown: string, stdin: Buffer | Readable | undefined) {
    return this.#spawn(line, shown, stdin, undefined)
  }

  async close(): Promise<void> {}
}
