/**
 * The dom0 executor: commands and files on a compute node's dom0, over the host internal management network, from
 * the compute VM — the path the original plugin used (`ssh -i /root/.ssh/xs_rsa root@169.254.0.1`), but with dom0's
 * host key pinned in a known-hosts file of its own that `xenserver.ssh-trust` writes (never
 * `StrictHostKeyChecking=no`, and neither the user's nor the system's known_hosts adds trust).
 *
 * It is node access's `Executor`, so node resources (files, iptables, cron, routes …) plan and apply on dom0 as they
 * do on any node. Commands run as `ssh … root@169.254.0.1 <line>`; `<line>` is node access's rendering of the command
 * (env and cwd inside it), so secrets in argv/env reach dom0 as their value and show as `***` in every error.
 */
import { dirname } from 'node:path'
import type { Readable } from 'node:stream'
import type { NativeTaskContext } from '../engine/tasks.js'
import {
  CommandError,
  CommandTimeoutError,
  Secret,
  atomicWriteScript,
  redact,
  renderCommand,
  secretsOf,
  shellQuote,
  type Command,
  type Executor,
  type PutOptions,
  type RunOptions,
  type RunResult,
} from '../node/index.js'
import { execOf, nodeDataOf } from './context.js'

/** Dom0's address on the HIMN (XAPI gives dom0 the first address of 169.254.0.0/16). */
export const DOM0_HIMN_ADDRESS = '169.254.0.1'
/** The compute VM's key for dom0 (the original plugin's XS_RSA). */
export const DOM0_KEY_FILE = '/root/.ssh/xs_rsa'
/** Dom0's pinned host key(s), on the compute VM; written by `xenserver.ssh-trust` only. */
export const DOM0_KNOWN_HOSTS_FILE = '/root/.ssh/xs_known_hosts'

export interface Dom0ExecutorOptions {
  /** Dom0's name for errors (the lab host / XenServer host name); default `dom0`. */
  dom0Name?: string
  /** The compute VM's name for errors; default the compute executor's host. */
  computeName?: string
  user?: string
  address?: string
  keyFile?: string
  knownHostsFile?: string
  /** ssh's connect timeout (default 15 s). */
  connectTimeoutS?: number
}

/** ssh failed to reach or log in to dom0 (not a command that failed on dom0). */
export class Dom0AccessError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'Dom0AccessError'
  }
}

const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i)
/** Seconds the connection master stays after its last command. */
const MASTER_IDLE_S = 120
// what ssh itself prints when it exits 255 (a remote command exiting 255 prints none of these)
const SSH_FAILURE =
  /^(ssh: |Host key verification failed|Permission denied \(|kex_exchange_identification|Connection (closed|reset|timed out)|@@@@@|No .* host key is known|Warning: Identity file|Load key )/m

/** The ssh options that make the HIMN hop verified and non-interactive. */
export function dom0SshOptions(
  o: Required<Pick<Dom0ExecutorOptions, 'keyFile' | 'knownHostsFile'>> & {
    connectTimeoutS?: number
  },
  mode: { password?: boolean } = {},
): string[] {
  return [
    // the password login of ssh-trust's first contact may prompt (through SSH_ASKPASS); the key login never does
    ...(mode.password ? [] : ['-i', o.keyFile, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes']),
    '-o',
    `UserKnownHostsFile=${o.knownHostsFile}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `ConnectTimeout=${o.connectTimeoutS ?? 15}`,
    '-o',
    'ServerAliveInterval=15',
    '-o',
    'LogLevel=ERROR',
  ]
}

/** Runs commands on dom0 through `ssh` on the compute VM. */
export class Dom0Executor implements Executor {
  readonly host: string
  private readonly o: Required<Omit<Dom0ExecutorOptions, 'computeName' | 'dom0Name'>> & {
    dom0Name: string
    computeName: string
  }

  constructor(
    private readonly compute: Executor,
    opts: Dom0ExecutorOptions = {},
  ) {
    this.o = {
      dom0Name: opts.dom0Name ?? 'dom0',
      computeName: opts.computeName ?? compute.host,
      user: opts.user ?? 'root',
      address: opts.address ?? DOM0_HIMN_ADDRESS,
      keyFile: opts.keyFile ?? DOM0_KEY_FILE,
      knownHostsFile: opts.knownHostsFile ?? DOM0_KNOWN_HOSTS_FILE,
      connectTimeoutS: opts.connectTimeoutS ?? 15,
    }
    this.host = `${this.o.dom0Name} (${this.o.user}@${this.o.address} via ${this.o.computeName})`
  }

  /**
   * The argv run on the compute VM for a remote line. Commands go through the connection master when it runs
   * (`ControlMaster=no`: without a live master ssh connects on its own, verifying the host key as always).
   */
  sshArgv(remoteLine: string | Secret): (string | Secret)[] {
    return [
      'ssh',
      ...dom0SshOptions(this.o),
      '-o',
      `ControlPath=${this.controlPath}`,
      '-o',
      'ControlMaster=no',
      '-l',
      this.o.user,
      this.o.address,
      '--',
      remoteLine,
    ]
  }

  /** Root-only (in /root/.ssh, 0700): the master's socket for this dom0. */
  get controlPath(): string {
    return `${dirname(this.o.keyFile)}/xs-mux-${this.o.user}@${this.o.address}`
  }

  private masterStarted = 0

  /**
   * One verified SSH connection to dom0 kept by the compute VM (OpenSSH's ControlMaster, idle timeout
   * MASTER_IDLE_S), so a command costs a session on it instead of a handshake: measured on the lab under load,
   * 10 commands 14.0 s → 5.9 s. Started with -f and stdio on /dev/null so nothing of ours waits on it; best effort —
   * when it cannot start, commands connect on their own and report the reason.
   */
  private async ensureMaster(): Promise<void> {
    if (Date.now() - this.masterStarted < (MASTER_IDLE_S / 2) * 1000) return
    this.masterStarted = Date.now()
    const argv = [
      'ssh',
      '-f',
      '-N',
      '-M',
      ...dom0SshOptions(this.o),
      '-o',
      `ControlPath=${this.controlPath}`,
      '-o',
      `ControlPersist=${MASTER_IDLE_S}`,
      '-l',
      this.o.user,
      this.o.address,
    ]
    // a master already there is kept: a second -M on the same socket would run on as a plain connection forever
    const check = ['ssh', '-o', `ControlPath=${this.controlPath}`, '-O', 'check', '-l', this.o.user, this.o.address]
    const line =
      `${check.map(shellQuote).join(' ')} >/dev/null 2>&1 || ` +
      `${argv.map(shellQuote).join(' ')} </dev/null >/dev/null 2>&1`
    const r = await this.compute
      .run(['sh', '-c', line], { allowedExitCodes: ANY_EXIT, timeoutMs: 60_000 })
      .catch(() => ({ code: 1 }))
    if (r.code !== 0) this.masterStarted = 0
  }

  async run(command: Command, options: RunOptions = {}): Promise<RunResult> {
    const { line, shown } = renderCommand(command, { env: options.env, cwd: options.cwd })
    const secrets = secretsOf(command, options)
    // a timeout is enforced on dom0 too: killing the local ssh leaves a remote command without a tty running
    const limited =
      options.timeoutMs !== undefined
        ? // `; exit $?` keeps a shell around timeout, which kills itself with the signal: sshd would report a signal
          // death and ssh exit 255; the shell turns it into status 137
          `timeout -s KILL ${Math.ceil(options.timeoutMs / 1000) + 1} sh -c ${shellQuote(line)}; exit $?`
        : line
    await this.ensureMaster()
    let r: RunResult
    try {
      r = await this.compute.run(this.sshArgv(secrets.length ? new Secret(limited) : limited), {
        stdin: options.stdin,
        timeoutMs: options.timeoutMs !== undefined ? options.timeoutMs + 5_000 : undefined,
        allowedExitCodes: ANY_EXIT,
        secrets,
      })
    } catch (e) {
      if (e instanceof CommandTimeoutError) throw new CommandTimeoutError(this.host, shown, options.timeoutMs ?? 0)
      throw new Dom0AccessError(`${this.host}: cannot run ssh on ${this.o.computeName}: ${(e as Error).message}`)
    }
    if (r.code === 255 && SSH_FAILURE.test(r.stderr)) throw await this.accessError(r.stderr, secrets)
    if (options.timeoutMs !== undefined && r.code === 137)
      throw new CommandTimeoutError(this.host, shown, options.timeoutMs)
    const allowed = options.allowedExitCodes ?? [0]
    if (!allowed.includes(r.code)) throw new CommandError(this.host, shown, r, secrets)
    return r
  }

  async put(path: string, data: string | Buffer | Readable | Secret, options: PutOptions = {}): Promise<void> {
    const body =
      typeof data === 'string' || Buffer.isBuffer(data) || data instanceof Secret ? data : await collect(data)
    await this.run(['sh', '-c', atomicWriteScript(path, options.mode ?? 0o644)], { stdin: body })
  }

  async get(path: string): Promise<Buffer> {
    // base64 keeps binary files intact through the compute executor's text stdout
    const r = await this.run([
      'sh',
      '-c',
      'test -f "$1" || { echo "no such file: $1" >&2; exit 2; }; base64 "$1"',
      'sh',
      path,
    ])
    return Buffer.from(r.stdout.replace(/\s+/g, ''), 'base64')
  }

  /** Ends the connection master (the compute executor belongs to the caller); a later command starts a new one. */
  async close(): Promise<void> {
    if (!this.masterStarted) return
    this.masterStarted = 0
    await this.compute
      .run(['ssh', '-o', `ControlPath=${this.controlPath}`, '-O', 'exit', '-l', this.o.user, this.o.address], {
        allowedExitCodes: ANY_EXIT,
        timeoutMs: 30_000,
      })
      .catch(() => undefined)
  }

  /** Explains why ssh failed: no key or no pinned host key yet, a changed host key, refused login, no route. */
  private async accessError(stderr: string, secrets: readonly (string | Secret)[]): Promise<Dom0AccessError> {
    const o = this.o
    const said = redact(stderr.trim().split('\n').slice(-3).join(' | '), secrets)
    const check = await this.compute
      .run(['sh', '-c', 'test -s "$1" && echo key; test -s "$2" && echo pinned', 'sh', o.keyFile, o.knownHostsFile], {
        allowedExitCodes: ANY_EXIT,
      })
      .catch(() => ({ stdout: 'key pinned' }))
    const where = `${this.host}: ssh from ${o.computeName} to dom0 ${o.dom0Name} at ${o.address} failed`
    if (!/\bkey\b/.test(check.stdout))
      return new Dom0AccessError(
        `${where}: ${o.computeName} has no key ${o.keyFile}; run xenserver.ssh-trust first (${said})`,
      )
    if (!/\bpinned\b/.test(check.stdout))
      return new Dom0AccessError(
        `${where}: no host key of dom0 is pinned in ${o.knownHostsFile} on ${o.computeName}; run xenserver.ssh-trust first (${said})`,
      )
    if (/IDENTIFICATION HAS CHANGED|Host key verification failed/.test(stderr))
      return new Dom0AccessError(
        `${where}: dom0's host key does not match the key pinned in ${o.knownHostsFile}; if dom0 was reinstalled, ` +
          `remove the pinned key and run xenserver.ssh-trust again, otherwise something else answers at ${o.address} (${said})`,
      )
    if (/Permission denied/.test(stderr))
      return new Dom0AccessError(
        `${where}: dom0 refused the key ${o.keyFile}; its public key is not in ${o.user}'s authorized_keys on dom0 — run xenserver.ssh-trust (${said})`,
      )
    return new Dom0AccessError(
      `${where}: dom0 is not reachable over the host internal management network — is the HIMN attached and addressed (xenserver.himn-attach, xenserver.himn-guest)? (${said})`,
    )
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string))
  return Buffer.concat(chunks)
}

const dom0ByCompute = new WeakMap<object, Dom0Executor>()

/**
 * The dom0 executor of a native task's node (a compute VM): one per compute executor, reused by every task of a
 * deployment. Dom0's name in errors comes from the node's data (`dom0.name`, else `xapiHost`).
 */
export async function dom0Of(ctx: Pick<NativeTaskContext, 'node' | 'exec'> & object): Promise<Dom0Executor> {
  const compute = execOf(ctx)
  let d = dom0ByCompute.get(compute)
  if (!d) {
    const data = nodeDataOf(ctx)
    d = new Dom0Executor(compute, {
      dom0Name: data.dom0?.name ?? data.dom0?.xapiHost ?? data.xapiHost ?? `dom0 of ${ctx.node}`,
      computeName: ctx.node,
    })
    dom0ByCompute.set(compute, d)
  }
  return d
}
