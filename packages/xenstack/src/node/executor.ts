/**
 * The executor interface: every change xenstack makes on a machine goes through `run`, `put` and `get`.
 *
 * A command is either a shell string or an argv array; argv elements may be `Secret`s, which are passed to the
 * node as their real value but shown as `***` in errors and logs. Implementations: `LocalExecutor` (this
 * machine, or a prefix such as `nsenter …`) and `SshExecutor` (one reused ssh2 connection per host).
 */
import type { Readable, Writable } from 'node:stream'
import { type MaybeSecret, Secret, display, redact, reveal } from './secret.js'

export type CommandArg = MaybeSecret
export type Command = string | Secret | readonly CommandArg[]

export interface RunOptions {
  /** Written to the command's standard input, then closed. */
  stdin?: string | Buffer | Secret
  /** Extra environment variables (values may be secret). */
  env?: Record<string, MaybeSecret>
  /** Working directory on the node. */
  cwd?: string
  /** Kill the command after this long and fail with a timeout error. */
  timeoutMs?: number
  /** Exit codes that are not failures (default `[0]`). */
  allowedExitCodes?: readonly number[]
  /** More values to scrub from the command line, stdout and stderr shown in errors. */
  secrets?: readonly MaybeSecret[]
}

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

export interface PutOptions {
  /** File mode of the written file (default 0o644; an existing file's mode is replaced). */
  mode?: number
}

export interface Executor {
  /** The name used in errors and logs, e.g. `root@dom0:22` or `local`. */
  readonly host: string
  run(command: Command, options?: RunOptions): Promise<RunResult>
  /** Writes a file (atomically: a temporary file in the same directory, then renamed). */
  put(path: string, data: string | Buffer | Readable, options?: PutOptions): Promise<void>
  get(path: string): Promise<Buffer>
  close(): Promise<void>
}

/** POSIX shell single-quoting. */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/**
 * Builds the shell line run on the node and the redacted line shown to people.
 * The env and cwd are part of the line, so they work the same locally and over SSH (sshd drops most env).
 */
export function renderCommand(command: Command, options: RunOptions = {}): { line: string; shown: string } {
  const parts: { line: string; shown: string }[] = []
  if (options.cwd !== undefined) {
    const q = shellQuote(options.cwd)
    parts.push({ line: `cd ${q} &&`, shown: `cd ${q} &&` })
  }
  const env = Object.entries(options.env ?? {})
  if (env.length > 0) {
    for (const [k] of env) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
        throw new Error(`environment variable name ${JSON.stringify(k)} is not valid`)
    }
    parts.push({
      line: 'env ' + env.map(([k, v]) => `${k}=${shellQuote(reveal(v))}`).join(' '),
      shown: 'env ' + env.map(([k, v]) => `${k}=${v instanceof Secret ? '***' : shellQuote(v)}`).join(' '),
    })
  }
  if (typeof command === 'string' || command instanceof Secret) {
    const text = reveal(command)
    const shown = display(command)
    // A shell string runs under sh -c so env/cwd prefixes apply to the whole line.
    if (parts.length > 0) parts.push({ line: `sh -c ${shellQuote(text)}`, shown: `sh -c ${shellQuote(shown)}` })
    else parts.push({ line: text, shown })
  } else {
    if (command.length === 0) throw new Error('empty command')
    parts.push({
      line: command.map((a) => shellQuote(reveal(a))).join(' '),
      shown: command.map((a) => (a instanceof Secret ? '***' : shellQuote(a))).join(' '),
    })
  }
  return { line: parts.map((p) => p.line).join(' '), shown: parts.map((p) => p.shown).join(' ') }
}

/** Every secret a command and its options carry (to scrub from output shown in errors). */
export function secretsOf(command: Command, options: RunOptions = {}): MaybeSecret[] {
  const out: MaybeSecret[] = [...(options.secrets ?? [])]
  if (command instanceof Secret) out.push(command)
  else if (Array.isArray(command)) for (const a of command) if (a instanceof Secret) out.push(a)
  for (const v of Object.values(options.env ?? {})) if (v instanceof Secret) out.push(v)
  if (options.stdin instanceof Secret) out.push(options.stdin)
  return out
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n')
  return all.slice(-lines).join('\n')
}

/** A command exited with a code that was not allowed. */
export class CommandError extends Error {
  readonly host: string
  readonly command: string
  readonly code: number
  readonly stderrTail: string
  readonly stdoutTail: string

  constructor(host: string, shownCommand: string, result: RunResult, secrets: readonly MaybeSecret[] = []) {
    const stderrTail = redact(tail(result.stderr, 10), secrets)
    const stdoutTail = redact(tail(result.stdout, 5), secrets)
    const command = redact(shownCommand, secrets)
    super(
      `${host}: command failed with exit code ${result.code}: ${command}` +
        (stderrTail
          ? `\n--- last lines of stderr ---\n${stderrTail}`
          : stdoutTail
            ? `\n--- last lines of stdout ---\n${stdoutTail}`
            : ''),
    )
    this.name = 'CommandError'
    this.host = host
    this.command = command
    this.code = result.code
    this.stderrTail = stderrTail
    this.stdoutTail = stdoutTail
  }
}

export class CommandTimeoutError extends Error {
  constructor(
    readonly host: string,
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`${host}: command did not finish within ${timeoutMs} ms and was killed: ${command}`)
    this.name = 'CommandTimeoutError'
  }
}

/** Throws `CommandError` unless the exit code is allowed. */
export function checkExit(
  host: string,
  shown: string,
  result: RunResult,
  options: RunOptions,
  secrets: readonly MaybeSecret[],
): RunResult {
  const allowed = options.allowedExitCodes ?? [0]
  if (!allowed.includes(result.code)) throw new CommandError(host, shown, result, secrets)
  return result
}

/** What a command's process gave back, before it is decoded and its exit code checked. */
export interface RawResult {
  code: number
  stdout: Buffer
  stderr: Buffer
}

/** A started command as its transport shows it: a child process, an SSH channel. */
export interface StartedCommand {
  stdout: Readable
  stderr: Readable
  /** 'error': it could not run (or its transport broke); 'close': it ended, with its exit code or signal. */
  on(event: 'error', listener: (e: Error) => void): unknown
  on(event: 'close', listener: (code: number | null | undefined, signal?: string | null) => void): unknown
}

/**
 * Collects a started command's output until it ends. Past `timeoutMs` it is killed (`kill` says how on this
 * transport) and the promise rejects with a CommandTimeoutError; a transport error rejects with `failed(e)`. A
 * command that ended without an exit code gets 128 when a signal ended it, else `noExitCode`.
 */
export function collectOutput(
  cmd: StartedCommand,
  host: string,
  shown: string,
  timeoutMs: number | undefined,
  how: { kill(): void; failed(e: Error): Error; noExitCode: number },
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true
            how.kill()
            reject(new CommandTimeoutError(host, shown, timeoutMs))
          }, timeoutMs)
    cmd.stdout.on('data', (b: Buffer) => out.push(b))
    cmd.stderr.on('data', (b: Buffer) => err.push(b))
    cmd.on('error', (e) => {
      if (timer) clearTimeout(timer)
      reject(how.failed(e))
    })
    cmd.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      if (timedOut) return
      const c = typeof code === 'number' ? code : signal ? 128 : how.noExitCode
      resolve({ code: c, stdout: Buffer.concat(out), stderr: Buffer.concat(err) })
    })
  })
}

/** Gives a command its input: a stream is piped, a buffer written, and the input ended either way. */
export function feedStdin(input: Writable, stdin: Buffer | Readable | undefined): void {
  if (stdin === undefined) input.end()
  else if (Buffer.isBuffer(stdin)) input.end(stdin)
  else stdin.pipe(input)
}

const decoded = (raw: RawResult): RunResult => ({
  code: raw.code,
  stdout: raw.stdout.toString('utf8'),
  stderr: raw.stderr.toString('utf8'),
})

/**
 * An executor over a transport that runs one `sh -c` line and hands back its raw output (a local process, an SSH
 * channel). What `run`, `put` and `get` mean is the same on every such transport and lives here: a Secret stdin
 * revealed only on its way to the process, UTF-8 output, the exit-code check with secrets scrubbed, the atomic
 * write script. A subclass says how a line runs.
 */
export abstract class ShellLineExecutor implements Executor {
  abstract readonly host: string

  /** Runs a command's line for `run`: a small stdin, an optional timeout. */
  protected abstract runLine(
    line: string,
    shown: string,
    stdin: Buffer | undefined,
    timeoutMs: number | undefined,
  ): Promise<RawResult>

  /** Runs a line whose input or output is file content (`put`, `get`): stdin may be a stream, output may be large. */
  protected abstract transferLine(line: string, shown: string, stdin: Buffer | Readable | undefined): Promise<RawResult>

  abstract close(): Promise<void>

  async run(command: Command, options: RunOptions = {}): Promise<RunResult> {
    const { line, shown } = renderCommand(command, options)
    const stdin =
      options.stdin === undefined
        ? undefined
        : Buffer.from(options.stdin instanceof Secret ? options.stdin.reveal() : options.stdin)
    const raw = await this.runLine(line, shown, stdin, options.timeoutMs)
    return checkExit(this.host, shown, decoded(raw), options, secretsOf(command, options))
  }

  async put(path: string, data: string | Buffer | Readable, options: PutOptions = {}): Promise<void> {
    const shown = `write ${shellQuote(path)}`
    const script = atomicWriteScript(path, options.mode ?? 0o644)
    const raw = await this.transferLine(script, shown, typeof data === 'string' ? Buffer.from(data) : data)
    checkExit(this.host, shown, decoded(raw), {}, [])
  }

  async get(path: string): Promise<Buffer> {
    const line = `cat ${shellQuote(path)}`
    const raw = await this.transferLine(line, line, undefined)
    // On failure the error carries stderr only: stdout is (part of) the file's content.
    if (raw.code !== 0)
      checkExit(this.host, line, { code: raw.code, stdout: '', stderr: raw.stderr.toString('utf8') }, {}, [])
    return raw.stdout
  }
}

/** The shell script `put` runs on the node: write to a temporary file beside the target, then rename it. */
export function atomicWriteScript(path: string, mode: number): string {
  const p = shellQuote(path)
  const m = (mode & 0o7777).toString(8).padStart(4, '0')
  return (
    `set -e; d=$(dirname ${p}); b=$(basename ${p}); t=$(mktemp "$d/.$b.xenstack-XXXXXX"); ` +
    `trap 'rm -f "$t"' EXIT; cat > "$t"; chmod ${m} "$t"; mv -f "$t" ${p}; trap - EXIT`
  )
}
