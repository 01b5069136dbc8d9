/**
 * Resources on the system: kernel-module blacklist removal, cron entries, services, packages, SSH authorized keys
 * and guarded commands.
 */
import { type Command, type RunOptions, renderCommand, shellQuote } from '../executor.js'
import { ensureTrailingNewline, readText, statPath, writeFileAtomic } from '../files.js'
import type { CheckResult, NodeContext, Resource } from '../resource.js'
import { type MaybeSecret, reveal } from '../secret.js'
import { lineDiff } from '../text-diff.js'
import type { Ensure } from './file.js'

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

export interface ModprobeBlacklistRemovalOptions {
  /** Kernel module, e.g. `bridge`. */
  module: string
  /** Default `/etc/modprobe.d`. */
  dir?: string
}

/**
 * Removes `blacklist <module>` (and `install <module> /bin/true|false`) lines from every file in /etc/modprobe.d;
 * a file left with only comments is deleted (dom0's `blacklist-bridge.conf`).
 */
export class ModprobeBlacklistRemoval implements Resource {
  readonly id: string
  readonly dir: string
  constructor(readonly options: ModprobeBlacklistRemovalOptions) {
    if (!/^[A-Za-z0-9_-]+$/.test(options.module))
      throw new Error(`kernel module name ${JSON.stringify(options.module)} is not valid`)
    this.dir = options.dir ?? '/etc/modprobe.d'
    this.id = `modprobe blacklist of ${options.module} removed`
  }

  #line(): RegExp {
    const m = escapeRe(this.options.module).replace(/[-_]/g, '[-_]')
    return new RegExp(`^\\s*(blacklist\\s+${m}|install\\s+${m}\\s+/(usr/)?bin/(true|false))\\s*(#.*)?$`)
  }

  async #files(ctx: NodeContext): Promise<{ path: string; text: string; next: string | undefined }[]> {
    const r = await ctx.exec.run(
      `for f in ${shellQuote(this.dir)}/*; do [ -f "$f" ] && grep -qE '^[[:space:]]*(blacklist|install)[[:space:]]' "$f" && echo "$f"; done; true`,
    )
    const re = this.#line()
    const out: { path: string; text: string; next: string | undefined }[] = []
    for (const path of r.stdout.split('\n').filter(Boolean)) {
      const text = (await readText(ctx.exec, path)) ?? ''
      const lines = text.replace(/\n$/, '').split('\n')
      const kept = lines.filter((l) => !re.test(l))
      if (kept.length === lines.length) continue
      const meaningful = kept.some((l) => l.trim() !== '' && !l.trim().startsWith('#'))
      out.push({ path, text, next: meaningful ? ensureTrailingNewline(kept.join('\n')) : undefined })
    }
    return out
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const files = await this.#files(ctx)
    const diff = files.flatMap((f) =>
      f.next === undefined ? [`- remove ${f.path}`] : [`~ ${f.path}`, ...lineDiff(f.text, f.next)],
    )
    return {
      inSync: files.length === 0,
      current: files.length ? `blacklisted in ${files.map((f) => f.path).join(', ')}` : 'not blacklisted',
      desired: 'not blacklisted',
      diff,
    }
  }

  async apply(ctx: NodeContext): Promise<void> {
    for (const f of await this.#files(ctx)) {
      if (f.next === undefined) await ctx.exec.run(['rm', '-f', '--', f.path])
      else {
        const st = await statPath(ctx.exec, f.path)
        await writeFileAtomic(ctx.exec, f.path, f.next, { mode: st?.mode ?? 0o644 })
      }
    }
  }
}

export interface CronEntryOptions {
  /** Identifies the entry (a `# xenstack: <name>` comment above it) so a changed schedule replaces it. */
  name: string
  schedule: string
  command: string
  user?: string
  ensure?: Ensure
}

/** One entry merged into a user's crontab: other entries, comments and variables are kept as they are. */
export class CronEntry implements Resource {
  readonly id: string
  readonly user: string
  constructor(readonly options: CronEntryOptions) {
    if (/[\n\r]/.test(options.schedule + options.command + options.name))
      throw new Error(`cron entry ${options.name}: newlines are not allowed`)
    if (!/^(@\w+|(\S+\s+){4}\S+)$/.test(options.schedule.trim()))
      throw new Error(
        `cron entry ${options.name}: schedule ${JSON.stringify(options.schedule)} is not five fields or an @keyword`,
      )
    this.user = options.user ?? 'root'
    this.id = `cron ${this.user}: ${options.name}`
  }

  get marker(): string {
    return `# xenstack: ${this.options.name}`
  }

  get entry(): string {
    return `${this.options.schedule.trim()} ${this.options.command}`
  }

  async #read(ctx: NodeContext): Promise<string> {
    const r = await ctx.exec.run(['crontab', '-l', '-u', this.user], { allowedExitCodes: [0, 1] })
    if (r.code === 1) {
      if (/no crontab/i.test(r.stderr)) return ''
      throw new Error(`crontab -l -u ${this.user} failed: ${r.stderr.trim()}`)
    }
    return r.stdout
  }

  #edit(text: string): string {
    const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n')
    const out: string[] = []
    let placed = false
    const absent = this.options.ensure === 'absent'
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]
      if (l === this.marker) {
        // Our entry: the line after the marker.
        i++
        if (!absent && !placed) {
          out.push(this.marker, this.entry)
          placed = true
        }
        continue
      }
      if (l.trim() === this.entry.trim()) {
        // The same entry added earlier without our marker (by hand or by the original plugin): keep it once.
        if (!absent && !placed) {
          out.push(l)
          placed = true
        }
        continue
      }
      out.push(l)
    }
    if (!absent && !placed) out.push(this.marker, this.entry)
    return out.length === 0 ? '' : out.join('\n') + '\n'
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const text = await this.#read(ctx)
    const next = this.#edit(text)
    if (next === text) return { inSync: true, current: 'present', desired: this.options.ensure ?? 'present', diff: [] }
    return {
      inSync: false,
      current: 'different',
      desired: this.options.ensure ?? 'present',
      diff: lineDiff(text, next),
    }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const text = await this.#read(ctx)
    const next = this.#edit(text)
    if (next !== text) await ctx.exec.run(['crontab', '-u', this.user, '-'], { stdin: next })
  }
}

export interface ServiceOptions {
  name: string
  /** `running` starts it when stopped; `stopped` stops it. Omit to leave the run state alone. */
  ensure?: 'running' | 'stopped'
  /** Enable at boot. */
  enable?: boolean
  /** Restart when any of these resources changed earlier in the same apply (e.g. its config file). */
  restartOn?: readonly Resource[]
  /** Fail when the service is not installed (default false: reported `not installed`, nothing done). */
  required?: boolean
}

type Manager = 'systemd' | 'sysv'

/** A service, managed with systemctl when systemd runs and with `service`/init scripts otherwise. */
export class Service implements Resource {
  readonly id: string
  readonly verifyAfterApply = false
  constructor(readonly options: ServiceOptions) {
    if (!/^[A-Za-z0-9@_.:-]+$/.test(options.name))
      throw new Error(`service name ${JSON.stringify(options.name)} is not valid`)
    this.id = `service ${options.name}`
  }

  async #state(
    ctx: NodeContext,
  ): Promise<{ manager: Manager; installed: boolean; running: boolean; enabled: boolean; family: string }> {
    const f = await ctx.facts()
    const n = shellQuote(this.options.name)
    if (f.systemd) {
      const r = await ctx.exec.run(
        `echo "$(systemctl show -p LoadState ${n}.service 2>/dev/null | sed -n 's/^LoadState=//p')"; systemctl is-active --quiet ${n}.service && echo active || echo inactive; systemctl is-enabled ${n}.service 2>/dev/null || true`,
      )
      const [load = '', active = '', enabled = ''] = r.stdout.split('\n')
      return {
        manager: 'systemd',
        installed: load.trim() === 'loaded',
        running: active === 'active',
        enabled: enabled.trim() === 'enabled',
        family: f.osFamily,
      }
    }
    const r = await ctx.exec.run(
      `if [ -x /etc/init.d/${n} ]; then echo installed; /etc/init.d/${n} status >/dev/null 2>&1 && echo running || echo stopped; ` +
        (f.osFamily === 'redhat'
          ? `chkconfig ${n} >/dev/null 2>&1 && echo enabled || echo disabled; `
          : `ls /etc/rc[2345].d/S*${n} >/dev/null 2>&1 && echo enabled || echo disabled; `) +
        `else echo absent; fi`,
    )
    const [inst, run, en] = r.stdout.split('\n')
    return {
      manager: 'sysv',
      installed: inst === 'installed',
      running: run === 'running',
      enabled: en === 'enabled',
      family: f.osFamily,
    }
  }

  #actions(ctx: NodeContext, s: { running: boolean; enabled: boolean }): string[] {
    const o = this.options
    const acts: string[] = []
    const trigger = o.restartOn?.find((r) => ctx.changed.has(r))
    if (o.ensure === 'stopped' && s.running) acts.push('stop')
    else if (o.ensure === 'running' && !s.running) acts.push('start')
    else if (trigger && s.running) acts.push(`restart (${trigger.id} changed)`)
    if (o.enable === true && !s.enabled) acts.push('enable')
    if (o.enable === false && s.enabled) acts.push('disable')
    return acts
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const s = await this.#state(ctx)
    if (!s.installed) {
      if (this.options.required) throw new Error(`service ${this.options.name} is not installed`)
      return { inSync: true, current: 'not installed', desired: 'not installed', diff: [], note: 'not installed' }
    }
    const acts = this.#actions(ctx, s)
    const current = `${s.running ? 'running' : 'stopped'}, ${s.enabled ? 'enabled' : 'disabled'}`
    return {
      inSync: acts.length === 0,
      current,
      desired: acts.length ? acts.join(', ') : current,
      diff: acts.map((a) => `~ ${a} ${this.options.name}`),
    }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const s = await this.#state(ctx)
    if (!s.installed) return
    const name = this.options.name
    for (const act of this.#actions(ctx, s)) {
      const verb = act.split(' ')[0]
      if (s.manager === 'systemd') await ctx.exec.run(['systemctl', verb, `${name}.service`])
      else if (verb === 'enable' || verb === 'disable') {
        if (s.family === 'redhat') await ctx.exec.run(['chkconfig', name, verb === 'enable' ? 'on' : 'off'])
        else
          await ctx.exec.run(
            `update-rc.d ${shellQuote(name)} defaults >/dev/null 2>&1; update-rc.d ${shellQuote(name)} ${verb}`,
          )
      } else await ctx.exec.run([`/etc/init.d/${name}`, verb])
    }
  }
}

export interface PackageOptions {
  name: string
  /** A package file on the node to install from (e.g. `/tmp/x.deb`) instead of the repositories. */
  source?: string
  ensure?: Ensure
}

/** A package installed with apt (Debian family) or yum (RHEL family), only when missing. */
export class Package implements Resource {
  readonly id: string
  constructor(readonly options: PackageOptions) {
    if (!/^[A-Za-z0-9][A-Za-z0-9+._-]*$/.test(options.name))
      throw new Error(`package name ${JSON.stringify(options.name)} is not valid`)
    this.id = `package ${options.name}`
  }

  async #installed(ctx: NodeContext): Promise<{ installed: boolean; family: string; version?: string }> {
    const f = await ctx.facts()
    const n = this.options.name
    if (f.osFamily === 'debian') {
      const r = await ctx.exec.run(['dpkg-query', '-W', '-f=${Status}|${Version}', n], { allowedExitCodes: [0, 1] })
      const [status = '', version] = r.stdout.split('|')
      return {
        installed: r.code === 0 && /install ok installed/.test(status),
        family: f.osFamily,
        ...(version ? { version } : {}),
      }
    }
    if (f.osFamily === 'redhat') {
      const r = await ctx.exec.run(['rpm', '-q', '--qf', '%{VERSION}-%{RELEASE}', n], { allowedExitCodes: [0, 1] })
      return { installed: r.code === 0, family: f.osFamily, ...(r.code === 0 ? { version: r.stdout.trim() } : {}) }
    }
    throw new Error(`package ${n}: no package manager known for OS ${f.osId}`)
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const s = await this.#installed(ctx)
    const want = this.options.ensure !== 'absent'
    const current = s.installed ? `installed ${s.version ?? ''}`.trim() : 'not installed'
    if (s.installed === want) return { inSync: true, current, desired: want ? 'installed' : 'absent', diff: [] }
    const tool = s.family === 'debian' ? 'apt-get' : 'yum'
    return {
      inSync: false,
      current,
      desired: want ? 'installed' : 'absent',
      diff: [
        want
          ? `+ ${tool} install ${this.options.source ?? this.options.name}`
          : `- ${tool} remove ${this.options.name}`,
      ],
    }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const s = await this.#installed(ctx)
    const target = this.options.source ?? this.options.name
    const want = this.options.ensure !== 'absent'
    const opts: RunOptions = { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 15 * 60_000 }
    if (s.family === 'debian') {
      if (want) await ctx.exec.run(['apt-get', 'install', '-y', '--no-install-recommends', target], opts)
      else await ctx.exec.run(['apt-get', 'remove', '-y', this.options.name], opts)
    } else if (want) await ctx.exec.run(['yum', 'install', '-y', target], opts)
    else await ctx.exec.run(['yum', 'remove', '-y', this.options.name], opts)
  }
}

export interface AuthorizedKeyOptions {
  /** A public key line: `ssh-ed25519 AAAA… comment` (options before the type are allowed). */
  key: string
  user?: string
  ensure?: Ensure
}

function keyIdentity(line: string): string | undefined {
  const m = /(?:^|\s)((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+)\s+([A-Za-z0-9+/=]+)/.exec(line)
  return m ? `${m[1]} ${m[2]}` : undefined
}

/** One key in a user's ~/.ssh/authorized_keys (compared by type and key, not comment); the file keeps its others. */
export class AuthorizedKey implements Resource {
  readonly id: string
  readonly user: string
  readonly identity: string
  constructor(readonly options: AuthorizedKeyOptions) {
    const identity = keyIdentity(options.key)
    if (!identity || /[\n\r]/.test(options.key.trim()))
      throw new Error(`authorized key for ${options.user ?? 'root'}: not an SSH public key line`)
    this.identity = identity
    this.user = options.user ?? 'root'
    this.id = `authorized key ${this.user}: ${identity.slice(0, 24)}…${identity.slice(-8)}`
  }

  async #path(ctx: NodeContext): Promise<{ home: string; path: string }> {
    const r = await ctx.exec.run(['getent', 'passwd', this.user], { allowedExitCodes: [0, 2] })
    const home = r.stdout.split(':')[5]
    if (r.code !== 0 || !home) throw new Error(`authorized key: user ${this.user} does not exist`)
    return { home, path: `${home}/.ssh/authorized_keys` }
  }

  #edit(text: string | undefined): string | undefined {
    const lines = text === undefined || text === '' ? [] : text.replace(/\n$/, '').split('\n')
    const has = lines.some((l) => keyIdentity(l) === this.identity)
    if (this.options.ensure === 'absent') {
      return has ? ensureTrailingNewline(lines.filter((l) => keyIdentity(l) !== this.identity).join('\n')) : text
    }
    return has ? text : ensureTrailingNewline(text ?? '') + this.options.key.trim() + '\n'
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const { path } = await this.#path(ctx)
    const text = await readText(ctx.exec, path)
    const next = this.#edit(text)
    const want = this.options.ensure === 'absent' ? 'absent' : 'present'
    if (next === text) return { inSync: true, current: want, desired: want, diff: [] }
    return {
      inSync: false,
      current: want === 'present' ? 'absent' : 'present',
      desired: want,
      diff: [`${want === 'present' ? '+' : '-'} ${this.identity.slice(0, 40)}… in ${path}`],
    }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const { home, path } = await this.#path(ctx)
    const text = await readText(ctx.exec, path)
    const next = this.#edit(text)
    if (next === undefined || next === text) return
    const u = shellQuote(this.user)
    await ctx.exec.run(`d=${shellQuote(home + '/.ssh')}; mkdir -p "$d" && chmod 700 "$d" && chown ${u}: "$d"`)
    await writeFileAtomic(ctx.exec, path, next, { mode: 0o600, owner: this.user })
  }
}

export interface CommandResourceOptions {
  /** A name for reports, e.g. `install dom0 plugins`. */
  name: string
  command: Command
  /** Skip when this path exists on the node. */
  creates?: string
  /** Skip when this command succeeds. */
  unless?: Command
  /** Run only when this command succeeds. */
  onlyIf?: Command
  env?: Record<string, MaybeSecret>
  cwd?: string
  timeoutMs?: number
  allowedExitCodes?: number[]
  stdin?: string
}

/**
 * A command guarded by `creates`/`unless`/`onlyIf`. Without a guard it runs on every apply (and is never
 * `unchanged`), so give one whenever the command has a lasting effect that can be checked.
 */
export class CommandResource implements Resource {
  readonly id: string
  readonly verifyAfterApply: boolean
  constructor(readonly options: CommandResourceOptions) {
    this.id = `command ${options.name}`
    this.verifyAfterApply = options.creates !== undefined || options.unless !== undefined
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const o = this.options
    const shown = renderCommand(o.command, { env: o.env, cwd: o.cwd }).shown
    if (o.creates !== undefined) {
      const st = await statPath(ctx.exec, o.creates)
      if (st) return { inSync: true, current: `${o.creates} exists`, desired: `${o.creates} exists`, diff: [] }
    }
    if (o.unless !== undefined) {
      const r = await ctx.exec.run(o.unless, { allowedExitCodes: [...Array(256).keys()], env: o.env, cwd: o.cwd })
      if (r.code === 0) return { inSync: true, current: 'guard holds', desired: 'guard holds', diff: [] }
    }
    if (o.onlyIf !== undefined) {
      const r = await ctx.exec.run(o.onlyIf, { allowedExitCodes: [...Array(256).keys()], env: o.env, cwd: o.cwd })
      if (r.code !== 0)
        return {
          inSync: true,
          current: 'condition false',
          desired: 'condition false',
          diff: [],
          note: 'onlyIf condition is false',
        }
    }
    return { inSync: false, current: 'not run', desired: 'run', diff: [`+ run: ${shown}`] }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const o = this.options
    await ctx.exec.run(o.command, {
      env: o.env,
      cwd: o.cwd,
      timeoutMs: o.timeoutMs,
      allowedExitCodes: o.allowedExitCodes,
      ...(o.stdin !== undefined ? { stdin: o.stdin } : {}),
    })
  }
}

/** Reveal helper kept for callers that build command lines from settings. */
export const secretValue = (v: MaybeSecret): string => reveal(v)

export interface KnownHostOptions {
  /** Host name or address as the client will use it (e.g. `169.254.0.1`). */
  host: string
  port?: number
  /** The host's public key line or `type base64` (e.g. from dom0's /etc/ssh/ssh_host_ed25519_key.pub). */
  key: string
  user?: string
}

/**
 * Pins a host key in a user's ~/.ssh/known_hosts (so `ssh` from that node verifies the host instead of
 * `StrictHostKeyChecking=no`): other hosts' lines are kept; an old key for the same host and key type is replaced.
 */
export class KnownHost implements Resource {
  readonly id: string
  readonly user: string
  readonly name: string
  readonly type: string
  readonly blob: string
  constructor(readonly options: KnownHostOptions) {
    const identity = keyIdentity(options.key)
    if (!identity || /[\n\r]/.test(options.key.trim()))
      throw new Error(`known host ${options.host}: not an SSH public key`)
    ;[this.type, this.blob] = identity.split(' ')
    if (!/^[A-Za-z0-9_.:[\]-]+$/.test(options.host))
      throw new Error(`known host ${JSON.stringify(options.host)}: not a host name`)
    this.user = options.user ?? 'root'
    const port = options.port ?? 22
    this.name = port === 22 ? options.host : `[${options.host}]:${port}`
    this.id = `known host ${this.name} for ${this.user}`
  }

  get line(): string {
    return `${this.name} ${this.type} ${this.blob}`
  }

  #edit(text: string | undefined): string {
    const lines = text === undefined || text === '' ? [] : text.replace(/\n$/, '').split('\n')
    const same = (l: string): boolean => {
      const [hosts, type] = l.trim().split(/\s+/)
      return type === this.type && (hosts ?? '').split(',').includes(this.name)
    }
    const kept: string[] = []
    let placed = false
    for (const l of lines) {
      if (!same(l)) kept.push(l)
      else if (!placed) {
        kept.push(this.line)
        placed = true
      }
    }
    if (!placed) kept.push(this.line)
    return kept.join('\n') + '\n'
  }

  async #path(ctx: NodeContext): Promise<{ home: string; path: string }> {
    const r = await ctx.exec.run(['getent', 'passwd', this.user], { allowedExitCodes: [0, 2] })
    const home = r.stdout.split(':')[5]
    if (r.code !== 0 || !home) throw new Error(`known host: user ${this.user} does not exist`)
    return { home, path: `${home}/.ssh/known_hosts` }
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const { path } = await this.#path(ctx)
    const text = await readText(ctx.exec, path)
    const next = this.#edit(text)
    if (next === text) return { inSync: true, current: 'pinned', desired: 'pinned', diff: [] }
    return { inSync: false, current: 'not pinned', desired: 'pinned', diff: lineDiff(text ?? '', next) }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const { home, path } = await this.#path(ctx)
    const text = await readText(ctx.exec, path)
    const next = this.#edit(text)
    if (next === text) return
    const u = shellQuote(this.user)
    await ctx.exec.run(`d=${shellQuote(home + '/.ssh')}; mkdir -p "$d" && chmod 700 "$d" && chown ${u}: "$d"`)
    await writeFileAtomic(ctx.exec, path, next, { mode: 0o644, owner: this.user })
  }
}
