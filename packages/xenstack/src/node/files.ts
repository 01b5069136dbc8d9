/** File-system helpers on a node, shared by the file-based resources. */
import type { Executor } from './executor.js'
import { shellQuote } from './executor.js'
import { type MaybeSecret, Secret } from './secret.js'

export type PathType = 'file' | 'directory' | 'symlink' | 'other'

export interface PathStat {
  type: PathType
  /** Permission bits, e.g. 0o644. */
  mode: number
  owner: string
  group: string
}

const STAT_FORMAT = "'%F|%a|%U|%G'"

function parseStat(line: string): PathStat | undefined {
  if (line === 'absent' || line === '') return undefined
  const [kind, mode, owner, group] = line.split('|')
  const type: PathType = kind.startsWith('regular')
    ? 'file'
    : kind === 'directory'
      ? 'directory'
      : kind === 'symbolic link'
        ? 'symlink'
        : 'other'
  return { type, mode: parseInt(mode, 8), owner, group }
}

/** lstat of a path on the node, or `undefined` when it does not exist. */
export async function statPath(exec: Executor, path: string): Promise<PathStat | undefined> {
  const r = await exec.run(`stat -c ${STAT_FORMAT} -- ${shellQuote(path)} 2>/dev/null || echo absent`)
  return parseStat(r.stdout.trim())
}

export interface FileState {
  /** lstat of the path (a symlink is reported as a symlink). */
  stat: PathStat | undefined
  /** The content when the path is a regular file or a link to one; undefined otherwise. */
  content: Buffer | undefined
}

/** One round trip: the path's lstat and, for a regular file (or a link to one), its content. */
export async function inspectFile(exec: Executor, path: string): Promise<FileState> {
  const p = shellQuote(path)
  const r = await exec.run(
    `if [ -e ${p} ] || [ -L ${p} ]; then stat -c ${STAT_FORMAT} -- ${p}; if [ -f ${p} ]; then echo content; cat -- ${p}; else echo none; fi; else echo absent; fi`,
  )
  const out = r.stdout
  const nl = out.indexOf('\n')
  const stat = parseStat(out.slice(0, nl < 0 ? undefined : nl).trim())
  if (!stat) return { stat: undefined, content: undefined }
  const rest = out.slice(nl + 1)
  if (!rest.startsWith('content\n')) return { stat, content: undefined }
  // Re-read as bytes only when needed: stdout was decoded as UTF-8, which is exact for text files.
  const text = rest.slice('content\n'.length)
  return { stat, content: Buffer.from(text, 'utf8') }
}

/** The text of a file, or `undefined` when it does not exist. Fails if the path is not a regular file. */
export async function readText(exec: Executor, path: string): Promise<string | undefined> {
  return (await readTextState(exec, path)).text
}

/** The text of a file and its lstat, in one round trip. Fails if the path exists but is not a (link to a) file. */
export async function readTextState(
  exec: Executor,
  path: string,
): Promise<{ text: string | undefined; stat: PathStat | undefined }> {
  const st = await inspectFile(exec, path)
  if (!st.stat) return { text: undefined, stat: undefined }
  if (st.content === undefined) {
    if (st.stat.type === 'symlink') return { text: undefined, stat: st.stat } // dangling link reads as absent
    throw new Error(`${path}: expected a regular file, found a ${st.stat.type}`)
  }
  return { text: st.content.toString('utf8'), stat: st.stat }
}

/** A file's or directory's mode and ownership; what is left out is left as it is (or the default on creation). */
export interface FileAttributes {
  mode?: number
  owner?: string
  group?: string
}

export function octal(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0')
}

/**
 * Writes a file atomically (temporary file in the same directory, mode and owner set, then renamed over the target).
 * Content may be a Secret: it goes to the node on stdin, never on a command line.
 */
export async function writeFileAtomic(
  exec: Executor,
  path: string,
  content: Buffer | MaybeSecret,
  options: FileAttributes = {},
): Promise<void> {
  const p = shellQuote(path)
  const chown =
    options.owner !== undefined || options.group !== undefined
      ? `chown ${shellQuote(`${options.owner ?? ''}${options.group !== undefined ? ':' + options.group : ''}`)} "$t"; `
      : ''
  const script =
    `set -e; d=$(dirname ${p}); b=$(basename ${p}); t=$(mktemp "$d/.$b.xenstack-XXXXXX"); trap 'rm -f "$t"' EXIT; ` +
    `cat > "$t"; chmod ${octal(options.mode ?? 0o644)} "$t"; ${chown}mv -f "$t" ${p}; trap - EXIT`
  const stdin = content instanceof Secret ? content : Buffer.isBuffer(content) ? content : Buffer.from(content)
  await exec.run(script, { stdin })
}

/** Rewrites a text file keeping its mode and owner (or the defaults when it is new). */
export async function rewriteText(
  exec: Executor,
  path: string,
  content: MaybeSecret,
  existing: PathStat | undefined,
  defaults: FileAttributes = {},
): Promise<void> {
  if (existing?.type === 'symlink') {
    // Edit the link's target in place so the link stays a link.
    const r = await exec.run(['readlink', '-f', path])
    path = r.stdout.trim()
    existing = await statPath(exec, path)
  }
  await writeFileAtomic(exec, path, content, {
    mode: existing?.mode ?? defaults.mode ?? 0o644,
    owner: existing?.owner ?? defaults.owner,
    group: existing?.group ?? defaults.group,
  })
}

export function ensureTrailingNewline(text: string): string {
  return text === '' || text.endsWith('\n') ? text : text + '\n'
}
