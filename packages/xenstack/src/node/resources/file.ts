/** Resources on files: whole files, directories, symlinks, one line in a file, one ini setting. */
import { shellQuote } from '../executor.js'
import {
  type FileAttributes,
  type PathStat,
  ensureTrailingNewline,
  inspectFile,
  octal,
  readTextState,
  rewriteText,
  statPath,
  writeFileAtomic,
} from '../files.js'
import { iniGet, iniRemove, iniSet } from '../ini.js'
import type { CheckResult, NodeContext, Resource } from '../resource.js'
import { type MaybeSecret, REDACTED, Secret, display, reveal } from '../secret.js'
import { lineDiff } from '../text-diff.js'

export type Ensure = 'present' | 'absent'

function inSync(current: string, desired: string): CheckResult {
  return { inSync: true, current, desired, diff: [] }
}

function attributeDiff(st: PathStat | undefined, want: FileAttributes): string[] {
  const d: string[] = []
  if (!st) return d
  if (want.mode !== undefined && st.mode !== want.mode) d.push(`~ mode ${octal(st.mode)} → ${octal(want.mode)}`)
  if (want.owner !== undefined && st.owner !== want.owner) d.push(`~ owner ${st.owner} → ${want.owner}`)
  if (want.group !== undefined && st.group !== want.group) d.push(`~ group ${st.group} → ${want.group}`)
  return d
}

async function fixAttributes(ctx: NodeContext, path: string, want: FileAttributes): Promise<void> {
  if (want.mode !== undefined) await ctx.exec.run(['chmod', octal(want.mode), path])
  if (want.owner !== undefined || want.group !== undefined)
    await ctx.exec.run(['chown', `${want.owner ?? ''}${want.group !== undefined ? ':' + want.group : ''}`, path])
}

export interface FileOptions extends FileAttributes {
  path: string
  /** Desired content; a Secret is written as is and never shown. Omit to manage only mode/owner of an existing file. */
  content?: string | Buffer | Secret
  ensure?: Ensure
}

export class FileResource implements Resource {
  readonly id: string
  constructor(readonly options: FileOptions) {
    this.id = `file ${options.path}`
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const o = this.options
    const state = await inspectFile(ctx.exec, o.path)
    const st = state.stat
    if (st && st.type !== 'file') throw new Error(`${o.path}: expected a regular file, found a ${st.type}`)
    if (o.ensure === 'absent') {
      return st
        ? { inSync: false, current: 'present', desired: 'absent', diff: [`- remove ${o.path}`] }
        : inSync('absent', 'absent')
    }
    if (!st) {
      if (o.content === undefined) throw new Error(`${o.path}: does not exist and no content was given`)
      const shown =
        o.content instanceof Secret
          ? [`+ ${REDACTED} (secret content)`]
          : Buffer.isBuffer(o.content)
            ? [`+ ${o.content.length} bytes`]
            : lineDiff('', o.content)
      return {
        inSync: false,
        current: 'absent',
        desired: 'present',
        diff: [`+ create ${o.path} (${octal(o.mode ?? 0o644)})`, ...shown],
      }
    }
    const diff: string[] = []
    if (o.content !== undefined) {
      const current = Buffer.isBuffer(o.content) ? await ctx.exec.get(o.path) : (state.content ?? Buffer.alloc(0))
      const desired = Buffer.isBuffer(o.content) ? o.content : Buffer.from(reveal(o.content))
      if (!current.equals(desired)) {
        if (o.content instanceof Secret) diff.push(`~ content differs (secret, not shown)`)
        else if (Buffer.isBuffer(o.content) || current.includes(0))
          diff.push(`~ content differs (${current.length} → ${desired.length} bytes)`)
        else diff.push(...lineDiff(current.toString('utf8'), o.content))
      }
    }
    diff.push(...attributeDiff(st, o))
    return diff.length === 0
      ? inSync('present', 'present')
      : { inSync: false, current: 'present', desired: 'present', diff }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const o = this.options
    if (o.ensure === 'absent') {
      await ctx.exec.run(['rm', '-f', '--', o.path])
      return
    }
    const st = await statPath(ctx.exec, o.path)
    if (o.content === undefined) return fixAttributes(ctx, o.path, o)
    await writeFileAtomic(ctx.exec, o.path, o.content, {
      mode: o.mode ?? st?.mode ?? 0o644,
      owner: o.owner ?? st?.owner,
      group: o.group ?? st?.group,
    })
  }
}

export interface DirectoryOptions extends FileAttributes {
  path: string
}

export class DirectoryResource implements Resource {
  readonly id: string
  constructor(readonly options: DirectoryOptions) {
    this.id = `directory ${options.path}`
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const st = await statPath(ctx.exec, this.options.path)
    if (!st)
      return {
        inSync: false,
        current: 'absent',
        desired: 'directory',
        diff: [`+ create directory ${this.options.path}`],
      }
    if (st.type !== 'directory') throw new Error(`${this.options.path}: expected a directory, found a ${st.type}`)
    const diff = attributeDiff(st, this.options)
    return diff.length === 0
      ? inSync('directory', 'directory')
      : { inSync: false, current: 'directory', desired: 'directory', diff }
  }

  async apply(ctx: NodeContext): Promise<void> {
    await ctx.exec.run(['mkdir', '-p', '--', this.options.path])
    await fixAttributes(ctx, this.options.path, this.options)
  }
}

export interface SymlinkOptions {
  path: string
  target: string
  /** Replace a regular file or an empty directory found at `path` (default false: fail instead). */
  force?: boolean
}

export class SymlinkResource implements Resource {
  readonly id: string
  constructor(readonly options: SymlinkOptions) {
    this.id = `symlink ${options.path}`
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const { path, target, force } = this.options
    const st = await statPath(ctx.exec, path)
    const desired = `→ ${target}`
    if (!st) return { inSync: false, current: 'absent', desired, diff: [`+ ${path} → ${target}`] }
    if (st.type !== 'symlink') {
      if (!force)
        throw new Error(`${path}: expected a symlink to ${target}, found a ${st.type} (not replaced without force)`)
      return { inSync: false, current: st.type, desired, diff: [`- ${st.type} ${path}`, `+ ${path} → ${target}`] }
    }
    const current = (await ctx.exec.run(['readlink', '--', path])).stdout.replace(/\n$/, '')
    if (current === target) return inSync(desired, desired)
    return { inSync: false, current: `→ ${current}`, desired, diff: [`~ ${path} → ${current} becomes → ${target}`] }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const { path, target } = this.options
    const st = await statPath(ctx.exec, path)
    if (st?.type === 'directory') await ctx.exec.run(['rmdir', '--', path])
    // Create beside it and rename over it: never a moment without the link.
    const tmp = `${path}.xenstack-${process.pid}-${Date.now()}`
    await ctx.exec.run(
      `ln -s -- ${shellQuote(target)} ${shellQuote(tmp)} && mv -Tf -- ${shellQuote(tmp)} ${shellQuote(path)}`,
    )
  }
}

export interface LineOptions {
  path: string
  line: MaybeSecret
  /** A regular expression (JavaScript syntax) for the line to replace; the last match is replaced, others removed. */
  match?: string
  ensure?: Ensure
  /** Mode when the file has to be created (default 0o644). */
  mode?: number
}

export class LineInFile implements Resource {
  readonly id: string
  constructor(readonly options: LineOptions) {
    this.id = `line in ${options.path}: ${options.match ? `/${options.match}/` : display(options.line)}`
  }

  #edit(text: string | undefined): string | undefined {
    const o = this.options
    const line = reveal(o.line)
    const lines = text === undefined || text === '' ? [] : text.replace(/\n$/, '').split('\n')
    const re = o.match !== undefined ? new RegExp(o.match) : undefined
    const hits = lines.map((l, i) => (l === line || re?.test(l) ? i : -1)).filter((i) => i >= 0)
    if (o.ensure === 'absent') {
      if (hits.length === 0) return text
      return ensureTrailingNewline(lines.filter((_, i) => !hits.includes(i)).join('\n'))
    }
    if (hits.length === 0) return ensureTrailingNewline(text ?? '') + line + '\n'
    const last = hits[hits.length - 1]
    const next = lines.map((l, i) => (i === last ? line : l)).filter((_, i) => i === last || !hits.includes(i))
    return ensureTrailingNewline(next.join('\n'))
  }

  #show = (l: string): string => {
    const secret = this.options.line
    return secret instanceof Secret && l.includes(secret.reveal()) ? l.split(secret.reveal()).join(REDACTED) : l
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const { text } = await readTextState(ctx.exec, this.options.path)
    const next = this.#edit(text)
    const want = this.options.ensure === 'absent' ? 'absent' : 'present'
    if (next === text || (text === undefined && this.options.ensure === 'absent')) return inSync(want, want)
    return {
      inSync: false,
      current: text === undefined ? 'file absent' : 'different',
      desired: want,
      diff: [
        ...(text === undefined ? [`+ create ${this.options.path}`] : []),
        ...lineDiff(text ?? '', next ?? '', { show: this.#show }),
      ],
    }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const { text, stat: st } = await readTextState(ctx.exec, this.options.path)
    const next = this.#edit(text)
    if (next === undefined || next === text) return
    await rewriteText(ctx.exec, this.options.path, next, st, {
      mode: this.options.mode ?? 0o644,
    })
  }
}

export interface IniOptions {
  path: string
  section: string
  key: string
  /** The value; a Secret is written correctly and shown as `***`. Required unless `ensure: 'absent'`. */
  value?: MaybeSecret
  ensure?: Ensure
  /** Mode when the file has to be created (default 0o640: config files hold passwords). */
  mode?: number
  owner?: string
  group?: string
}

export class IniSetting implements Resource {
  readonly id: string
  constructor(readonly options: IniOptions) {
    if (options.ensure !== 'absent' && options.value === undefined)
      throw new Error(`ini ${options.path} [${options.section}] ${options.key}: a value is required`)
    this.id = `ini ${options.path} [${options.section}] ${options.key}`
  }

  #shown(v: string | undefined): string {
    if (v === undefined) return '(absent)'
    return this.options.value instanceof Secret ? REDACTED : v
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const { path, section, key, value, ensure } = this.options
    const { text } = await readTextState(ctx.exec, path)
    const current = text === undefined ? undefined : iniGet(text, section, key)
    const label = `[${section}] ${key}`
    if (ensure === 'absent') {
      if (current === undefined) return inSync('(absent)', '(absent)')
      return {
        inSync: false,
        current: this.#shown(current),
        desired: '(absent)',
        diff: [`- ${label} = ${this.#shown(current)}`],
      }
    }
    const want = reveal(value as MaybeSecret)
    // In sync only if the effective value is right and no duplicate of the key would confuse a reader.
    const next = text === undefined ? undefined : iniSet(text, section, key, want)
    if (current === want && next === text) return inSync(this.#shown(current), this.#shown(want))
    const diff = [
      ...(text === undefined ? [`+ create ${path}`] : []),
      current === undefined
        ? `+ ${label} = ${this.#shown(want)}`
        : current === want
          ? `- duplicate ${label} lines (keeping the last)`
          : `~ ${label} = ${this.#shown(current)} → ${this.#shown(want)}`,
    ]
    return { inSync: false, current: this.#shown(current), desired: this.#shown(want), diff }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const { path, section, key, value, ensure } = this.options
    const state = await readTextState(ctx.exec, path)
    const st = state.stat
    const text = state.text ?? ''
    const next =
      ensure === 'absent' ? iniRemove(text, section, key) : iniSet(text, section, key, reveal(value as MaybeSecret))
    if (next === text && st) return
    if (!st) {
      await ctx.exec.run(['mkdir', '-p', '--', path.replace(/\/[^/]*$/, '') || '/'])
    }
    await rewriteText(ctx.exec, path, next, st, {
      mode: this.options.mode ?? 0o640,
      owner: this.options.owner,
      group: this.options.group,
    })
  }
}
