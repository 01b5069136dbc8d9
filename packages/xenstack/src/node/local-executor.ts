/**
 * Runs commands on this machine, optionally behind a prefix (e.g. `nsenter -t <pid> -m -u -n --` to act inside a
 * namespace). Same semantics as the SSH executor: the command line goes through `sh -c`.
 */
import { spawn } from 'node:child_process'
import { Readable } from 'node:stream'
import { type RawResult, CommandTimeoutError, ShellLineExecutor } from './executor.js'

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

  #spawn(
    line: string,
    shown: string,
    stdin: Buffer | Readable | undefined,
    timeoutMs: number | undefined,
  ): Promise<RawResult> {
    const argv = [...this.#prefix, 'sh', '-c', line]
    return new Promise((resolve, reject) => {
      // Its own process group, so a timeout kills the command's children too (not just `sh`).
      const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
      const out: Buffer[] = []
      const err: Buffer[] = []
      let timedOut = false
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true
              try {
                process.kill(-(child.pid ?? 0), 'SIGKILL')
              } catch {
                child.kill('SIGKILL')
              }
              reject(new CommandTimeoutError(this.host, shown, timeoutMs ?? 0))
            }, timeoutMs)
      child.stdout.on('data', (b: Buffer) => out.push(b))
      child.stderr.on('data', (b: Buffer) => err.push(b))
      child.on('error', (e) => {
        if (timer) clearTimeout(timer)
        reject(new Error(`${this.host}: cannot start ${argv[0]}: ${e.message}`))
      })
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer)
        if (timedOut) return
        resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out), stderr: Buffer.concat(err) })
      })
      child.stdin.on('error', () => {
        /* the command may exit without reading its input */
      })
      if (stdin instanceof Readable) stdin.pipe(child.stdin)
      else child.stdin.end(stdin ?? Buffer.alloc(0))
    })
  }

  protected runLine(line: string, shown: string, stdin: Buffer | undefined, timeoutMs: number | undefined) {
    return this.#spawn(line, shown, stdin, timeoutMs)
  }

  protected transferLine(line: string, shown: string, stdin: Buffer | Readable | undefined) {
    return this.#spawn(line, shown, stdin, undefined)
  }

  async close(): Promise<void> {}
}
