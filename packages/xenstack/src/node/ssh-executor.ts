/**
 * Runs commands on a host over SSH (the `ssh2` library): one connection per executor, opened on first use and
 * reused by every command, reopened if it drops. Commands go through a few persistent shell sessions on that
 * connection (see shell-session.ts); streams and large inputs use one-off exec channels.
 *
 * Host keys are always verified against a `KnownHostsStore`. An unknown host is refused unless the caller asked for
 * trust on first use, which pins the key it saw; a host whose key differs from the pinned one is refused with both
 * fingerprints. There is no switch to skip verification.
 */
import type { Readable } from 'node:stream'
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2'
import {
  type RawResult,
  CommandTimeoutError,
  ShellLineExecutor,
  collectOutput,
  feedStdin,
  shellQuote,
} from './executor.js'
import {
  type HostKey,
  type KnownHostsStore,
  HostKeyMismatchError,
  UnknownHostKeyError,
  fingerprint,
  hostKeyFromBlob,
} from './known-hosts.js'
import { type MaybeSecret, Secret, redact } from './secret.js'
import { ShellSession } from './shell-session.js'

export interface SshExecutorOptions {
  host: string
  port?: number
  username?: string
  /** Private key (PEM/OpenSSH text). */
  privateKey?: string | Buffer | Secret
  passphrase?: Secret
  password?: Secret
  knownHosts: KnownHostsStore
  /** Accept and pin the key of a host that has no pin yet (logged as a warning). Default false. */
  trustOnFirstUse?: boolean
  /** Name shown in errors (default `user@host:port`). */
  name?: string
  readyTimeoutMs?: number
  /** Concurrent one-off exec channels (put/get, large stdin); default 4. */
  maxChannels?: number
  /**
   * Run commands through persistent shell sessions on the connection (default true): a command then costs a couple
   * of forks on the node instead of a new SSH session. `false` opens one exec channel per command.
   */
  persistentShell?: boolean
  /** Concurrent persistent shells (default 4; with maxChannels, stays below sshd's MaxSessions of 10). */
  maxShells?: number
  /** Receives warnings (trust on first use); never receives secrets. */
  log?: (message: string) => void
  /**
   * Connection attempts when the host does not answer (refused, reset, unreachable, handshake timeout) before a
   * command fails (default 3); the delay starts at `connectRetryDelayMs` (default 1 000) and doubles. A host key or
   * login failure is never retried.
   */
  connectAttempts?: number
  connectRetryDelayMs?: number
}

const RETRYABLE_CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
])

/** The host key algorithms ssh2 must negotiate to see a key of this type. */
function algorithmsFor(type: string): string[] {
  if (type === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']
  return [type]
}

export class SshExecutor extends ShellLineExecutor {
  readonly host: string
  readonly #options: SshExecutorOptions
  readonly #port: number
  #client: Promise<Client> | undefined
  #active = 0
  readonly #waiting: (() => void)[] = []
  #idleShells: ShellSession[] = []
  #shellCount = 0
  readonly #shellWaiters: (() => void)[] = []

  constructor(options: SshExecutorOptions) {
    super()
    if (!options.privateKey && !options.password) {
      throw new Error(`ssh ${options.host}: give a privateKey or a password`)
    }
    this.#options = options
    this.#port = options.port ?? 22
    this.host = options.name ?? `${options.username ?? 'root'}@${options.host}:${this.#port}`
  }

  #connect(): Promise<Client> {
    if (this.#client) return this.#client
    const o = this.#options
    const attempt = (async () => {
      const pinned = await o.knownHosts.lookup(o.host, this.#port)
      const attempts = Math.max(1, o.connectAttempts ?? 3)
      const started = Date.now()
      for (let n = 1; ; n++) {
        try {
          const client = await this.#open(pinned)
          const forget = (): void => {
            if (this.#client === attempt) this.#client = undefined
          }
          client.on('error', forget)
          client.on('close', forget)
          client.on('end', forget)
          return client
        } catch (e) {
          const err = e as Error & { sshRetryable?: boolean }
          if (!err.sshRetryable) throw e
          if (n >= attempts)
            throw new Error(
              `${this.host}: cannot connect over SSH: ${n} attempt${n > 1 ? 's' : ''} over ` +
                `${((Date.now() - started) / 1000).toFixed(1)} s to ${o.host}:${this.#port} as ${o.username ?? 'root'}, ` +
                `the last: ${err.message.replace(`${this.host}: cannot connect: `, '')}`,
              { cause: e },
            )
          await new Promise((r) => setTimeout(r, (o.connectRetryDelayMs ?? 1_000) * 2 ** (n - 1)))
        }
      }
    })()
    this.#client = attempt
    attempt.catch(() => {
      if (this.#client === attempt) this.#client = undefined
    })
    return attempt
  }

  /** One connection attempt; a network-level failure is marked `sshRetryable` (a key or login problem never is). */
  async #open(pinned: HostKey[]): Promise<Client> {
    const o = this.#options
    const client = new Client()
    // A late second 'error' (after the one that failed the connect) must not become an uncaught exception.
    client.on('error', () => {})
    let verifyError: Error | undefined
    const hostVerifier = (blob: Buffer, verify: (ok: boolean) => void): void => {
      let presented: HostKey
      try {
        presented = hostKeyFromBlob(Buffer.from(blob))
      } catch (e) {
        verifyError = new Error(`${this.host}: host presented an unreadable key: ${(e as Error).message}`)
        return verify(false)
      }
      const fp = fingerprint(presented.blob)
      if (pinned.length === 0) {
        if (!o.trustOnFirstUse) {
          verifyError = new UnknownHostKeyError(this.host, `${presented.type} ${fp}`)
          return verify(false)
        }
        o.log?.(`warning: ${this.host}: trusting on first use and pinning host key ${presented.type} ${fp}`)
        o.knownHosts.pin(o.host, this.#port, presented).then(
          () => verify(true),
          (e: Error) => {
            verifyError = new Error(`${this.host}: cannot pin host key: ${e.message}`)
            verify(false)
          },
        )
        return
      }
      if (pinned.some((k) => k.blob.equals(presented.blob))) return verify(true)
      verifyError = new HostKeyMismatchError(
        this.host,
        pinned.map((k) => `${k.type} ${fingerprint(k.blob)}`),
        `${presented.type} ${fp}`,
      )
      verify(false)
    }
    const config: ConnectConfig = {
      host: o.host,
      port: this.#port,
      username: o.username ?? 'root',
      readyTimeout: o.readyTimeoutMs ?? 20_000,
      hostVerifier: hostVerifier as unknown as ConnectConfig['hostVerifier'],
      keepaliveInterval: 15_000,
    }
    if (pinned.length > 0) {
      // Ask for the pinned key types so a host with several keys presents the one we know.
      const algs = [...new Set(pinned.flatMap((k) => algorithmsFor(k.type)))]
      config.algorithms = { serverHostKey: algs as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] }
    }
    if (o.privateKey !== undefined)
      config.privateKey = o.privateKey instanceof Secret ? o.privateKey.reveal() : o.privateKey
    if (o.passphrase !== undefined) config.passphrase = o.passphrase.reveal()
    if (o.password !== undefined) config.password = o.password.reveal()
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => {
        client.removeListener('ready', onReady)
        client.end()
        const secrets: MaybeSecret[] = [o.password, o.passphrase].filter((s): s is Secret => s !== undefined)
        if (verifyError) return reject(verifyError)
        const err = new Error(`${this.host}: cannot connect: ${redact(e.message, secrets)}`)
        // the host did not answer, or dropped the connection before the login: worth another attempt
        const code = (e as { code?: string; level?: string }).code
        const retryable =
          (code !== undefined && RETRYABLE_CONNECT_CODES.has(code)) || /handshake|Connection lost/i.test(e.message)
        reject(
          Object.assign(err, {
            sshRetryable: retryable && (e as { level?: string }).level !== 'client-authentication',
          }),
        )
      }
      const onReady = (): void => {
        client.removeListener('error', onError)
        resolve()
      }
      client.once('error', onError)
      client.once('ready', onReady)
      try {
        client.connect(config)
      } catch (e) {
        // e.g. a private key that cannot be parsed, or a wrong passphrase
        onError(e as Error)
      }
    })
    return client
  }

  async #acquire(): Promise<void> {
    if (this.#active < (this.#options.maxChannels ?? 4)) {
      this.#active++
      return
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  #release(): void {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#active--
  }

  async #exec(
    line: string,
    shown: string,
    stdin: Buffer | Readable | undefined,
    timeoutMs?: number,
  ): Promise<RawResult> {
    const client = await this.#connect()
    await this.#acquire()
    if (timeoutMs !== undefined) {
      // Closing the channel does not stop the command on the node; coreutils' timeout does, where it exists.
      const secs = Math.max(1, Math.ceil(timeoutMs / 1000))
      const q = shellQuote(line)
      line = `if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL ${secs} sh -c ${q}; else exec sh -c ${q}; fi`
    }
    try {
      const stream = await new Promise<ClientChannel>((resolve, reject) =>
        client.exec(line, (err, s) =>
          err ? reject(new Error(`${this.host}: cannot open a channel for ${shown}: ${err.message}`)) : resolve(s),
        ),
      )
      const done = collectOutput(
        { stdout: stream, stderr: stream.stderr, on: stream.on.bind(stream) },
        this.host,
        shown,
        timeoutMs,
        {
          kill: () => {
            try {
              stream.signal('KILL')
            } catch {
              /* the server may not support signals; closing the channel ends the session */
            }
            stream.close()
          },
          failed: (e) => new Error(`${this.host}: channel error running ${shown}: ${e.message}`),
          noExitCode: 255,
        },
      )
      feedStdin(stream, stdin)
      return await done
    } finally {
      this.#release()
    }
  }

  async #openShell(): Promise<ShellSession> {
    const client = await this.#connect()
    const channel = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec('sh', (err, s) =>
        err ? reject(new Error(`${this.host}: cannot open a shell session: ${err.message}`)) : resolve(s),
      ),
    )
    const session = await ShellSession.start(channel, this.host)
    // If the connection drops, its shells are gone too: fail what runs there, never write to a dead channel.
    const gone = (): void => session.abandon(new Error(`${this.host}: the SSH connection was lost`))
    client.once('close', gone)
    client.once('end', gone)
    return session
  }

  async #takeShell(): Promise<ShellSession> {
    for (;;) {
      const idle = this.#idleShells.pop()
      if (idle) {
        if (idle.alive) return idle
        this.#shellCount--
        continue
      }
      if (this.#shellCount < (this.#options.maxShells ?? 4)) {
        this.#shellCount++
        try {
          return await this.#openShell()
        } catch (e) {
          this.#shellCount--
          this.#shellWaiters.shift()?.()
          throw e
        }
      }
      await new Promise<void>((resolve) => this.#shellWaiters.push(resolve))
    }
  }

  #giveShell(s: ShellSession): void {
    if (s.alive) this.#idleShells.push(s)
    else this.#shellCount--
    this.#shellWaiters.shift()?.()
  }

  /** Runs through a persistent shell; undefined when this command needs its own channel. */
  async #viaShell(
    line: string,
    shown: string,
    stdin: Buffer | undefined,
    timeoutMs?: number,
  ): Promise<RawResult | undefined> {
    if (this.#options.persistentShell === false || (stdin && stdin.length > 1024 * 1024)) return undefined
    const shell = await this.#takeShell()
    try {
      if (timeoutMs !== undefined && !shell.hasTimeout) return undefined
      if (stdin !== undefined && stdin.length > 0 && !shell.hasBase64) return undefined
      const started = Date.now()
      let timer: NodeJS.Timeout | undefined
      const guard =
        timeoutMs === undefined
          ? undefined
          : new Promise<never>((_, reject) => {
              // Backstop in case the node's `timeout` cannot kill it: drop the session.
              timer = setTimeout(() => {
                void shell.close()
                reject(new CommandTimeoutError(this.host, shown, timeoutMs))
              }, timeoutMs + 5000)
            })
      try {
        const run = shell.run(line, stdin, timeoutMs === undefined ? undefined : timeoutMs / 1000)
        const r = await (guard ? Promise.race([run, guard]) : run)
        if (timeoutMs !== undefined && r.code === 137 && Date.now() - started >= timeoutMs)
          throw new CommandTimeoutError(this.host, shown, timeoutMs)
        return r
      } finally {
        if (timer) clearTimeout(timer)
      }
    } finally {
      this.#giveShell(shell)
    }
  }

  protected async runLine(line: string, shown: string, stdin: Buffer | undefined, timeoutMs: number | undefined) {
    return (await this.#viaShell(line, shown, stdin, timeoutMs)) ?? (await this.#exec(line, shown, stdin, timeoutMs))
  }

  /** Its own exec channel: file content streams straight through, with no copy in a shell session's temp dir. */
  protected transferLine(line: string, shown: string, stdin: Buffer | Readable | undefined) {
    return this.#exec(line, shown, stdin)
  }

  async close(): Promise<void> {
    await Promise.all(this.#idleShells.map((s) => s.close()))
    this.#idleShells = []
    this.#shellCount = 0
    const pending = this.#client
    this.#client = undefined
    if (!pending) return
    const client = await pending.catch(() => undefined)
    if (!client) return
    await new Promise<void>((resolve) => {
      client.once('close', () => resolve())
      client.end()
    })
  }
}
