/**
 * A persistent shell on one SSH channel that runs many commands, one after another.
 *
 * Opening an SSH session costs a fork, a PAM session and a login shell on the node (about 150 ms each on the lab,
 * more under load); a resource check needs one to three commands. Running them through one long-lived `sh` makes a
 * command cost a couple of forks instead. Each command runs as `sh -c <line>` in a subshell with its stdin, stdout
 * and stderr in files of a private temporary directory, so it cannot disturb the session or the framing; the
 * session then prints `<token> <exit code> <stdout bytes> <stderr bytes>` and the two outputs.
 */
import { randomBytes } from 'node:crypto'
import type { ClientChannel } from 'ssh2'
import { shellQuote } from './executor.js'

export interface ShellResult {
  code: number
  stdout: Buffer
  stderr: Buffer
}

interface Pending {
  resolve: (r: ShellResult) => void
  reject: (e: Error) => void
}

export class ShellSession {
  readonly #channel: ClientChannel
  readonly #token = `__xenstack_${randomBytes(8).toString('hex')}__`
  #buffer: Buffer = Buffer.alloc(0)
  #pending: Pending | undefined
  #dead: Error | undefined
  #busy = false
  #closed = false
  /** Whether coreutils `timeout` exists on the node (checked at start). */
  hasTimeout = false
  /** Whether `base64` exists on the node (needed to pass stdin through the session). */
  hasBase64 = false

  private constructor(
    channel: ClientChannel,
    readonly host: string,
  ) {
    this.#channel = channel
    channel.on('data', (b: Buffer) => this.#onData(b))
    channel.stderr.on('data', () => {
      /* the session's own stderr (not a command's) carries nothing we use */
    })
    channel.on('close', () => {
      this.#closed = true
      this.#fail(new Error(`${host}: the shell session closed`))
    })
    channel.on('error', (e: Error) => this.#fail(new Error(`${host}: shell session error: ${e.message}`)))
  }

  static async start(channel: ClientChannel, host: string): Promise<ShellSession> {
    const s = new ShellSession(channel, host)
    channel.write(
      // The dir name carries the shell's PID: a session killed outright (SIGKILL) cannot clean up, so each new
      // session removes the dirs of shells that no longer exist (or are zombies not yet reaped by sshd).
      `for d in "\${TMPDIR:-/tmp}"/.xenstack-sh-*-*; do [ -d "$d" ] || continue; p=\${d##*/.xenstack-sh-}; p=\${p%%-*}; ` +
        `{ kill -0 "$p" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null; } || rm -rf "$d"; done\n` +
        `T=$(mktemp -d "\${TMPDIR:-/tmp}/.xenstack-sh-$$-XXXXXX") || exit 1; trap 'rm -rf "$T"' EXIT; trap 'exit 129' HUP; trap 'exit 143' TERM\n`,
    )
    // Old dom0s (XenServer 6.x, CentOS 5) lack coreutils' timeout and base64: such commands use exec channels.
    const probe = await s.run(`for t in timeout base64; do command -v $t >/dev/null 2>&1 && echo yes || echo no; done`)
    const [timeout, base64] = probe.stdout.toString().split('\n')
    s.hasTimeout = timeout === 'yes'
    s.hasBase64 = base64 === 'yes'
    return s
  }

  get alive(): boolean {
    return this.#dead === undefined
  }

  get busy(): boolean {
    return this.#busy
  }

  /** Marks the session dead (its connection went away): the running command, if any, fails with `e`. */
  abandon(e: Error): void {
    this.#closed = true
    this.#fail(e)
  }

  #fail(e: Error): void {
    if (this.#dead) return
    this.#dead = e
    const p = this.#pending
    this.#pending = undefined
    p?.reject(e)
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    const p = this.#pending
    if (!p) return
    // Anything before our token (e.g. a shell startup file that prints) is not ours: drop it.
    const at = this.#buffer.indexOf(this.#token)
    if (at < 0) return
    if (at > 0) this.#buffer = Buffer.from(this.#buffer.subarray(at))
    const nl = this.#buffer.indexOf(10)
    if (nl < 0) return
    const header = this.#buffer.subarray(0, nl).toString('utf8').trim().split(/\s+/)
    if (header[0] !== this.#token || header.length !== 4) {
      this.#fail(
        new Error(
          `${this.host}: shell session out of step (unexpected output ${JSON.stringify(header.join(' ').slice(0, 80))})`,
        ),
      )
      void this.close()
      return
    }
    const [code, outLen, errLen] = header.slice(1).map(Number)
    if (this.#buffer.length < nl + 1 + outLen + errLen) return
    const stdout = Buffer.from(this.#buffer.subarray(nl + 1, nl + 1 + outLen))
    const stderr = Buffer.from(this.#buffer.subarray(nl + 1 + outLen, nl + 1 + outLen + errLen))
    this.#buffer = Buffer.from(this.#buffer.subarray(nl + 1 + outLen + errLen))
    this.#pending = undefined
    this.#busy = false
    p.resolve({ code, stdout, stderr })
  }

  /** Runs one shell line (as `sh -c <line>`); `timeoutSeconds` needs coreutils `timeout` on the node. */
  run(line: string, stdin?: Buffer, timeoutSeconds?: number): Promise<ShellResult> {
    if (this.#dead) return Promise.reject(this.#dead)
    if (this.#busy) return Promise.reject(new Error(`${this.host}: shell session is busy`))
    this.#busy = true
    const wrap = timeoutSeconds !== undefined ? `timeout -s KILL ${Math.max(1, Math.ceil(timeoutSeconds))} ` : ''
    const cmd = `${wrap}sh -c ${shellQuote(line)}`
    // Input goes through a pipe from a here-document (never a file); outputs are removed before they are sent,
    // so nothing (a config file with a password, say) stays on the node's disk between commands.
    const run =
      stdin && stdin.length > 0
        ? `base64 -d <<'${this.#token}' | ${cmd} > "$T/o" 2> "$T/e"; c=$?\n${stdin.toString('base64').replace(/.{1,76}/g, '$&\n')}${this.#token}\n`
        : `${cmd} < /dev/null > "$T/o" 2> "$T/e"; c=$?\n`
    const script =
      run +
      // the files are unlinked before a byte is sent (read through open descriptors), so once the caller has the
      // result nothing of it — a secret read from stdin and echoed, say — is left on the node's disk
      `so=$(wc -c < "$T/o"); se=$(wc -c < "$T/e"); exec 3< "$T/o" 4< "$T/e"; rm -f "$T/o" "$T/e"; ` +
      `printf '%s %s %s %s\\n' ${this.#token} "$c" $so $se; cat <&3; cat <&4; exec 3<&- 4<&-\n`
    return new Promise<ShellResult>((resolve, reject) => {
      this.#pending = { resolve, reject }
      this.#channel.write(script)
    })
  }

  /** Ends the session; resolves when the node's shell has exited (and removed its temporary directory). */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      if (this.#closed) return resolve()
      this.#channel.once('close', () => resolve())
      setTimeout(resolve, 5000).unref()
    })
    this.#fail(new Error(`${this.host}: the shell session was closed`))
    try {
      this.#channel.end()
    } catch {
      /* already gone */
    }
    return closed
  }
}
