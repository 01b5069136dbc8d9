/**
 * Dom0 plugins (issue 9.6): the selected plugin set installed into dom0's /etc/xapi.d/plugins (0755 files, each
 * compared by SHA-256 before anything is written), then `dom0_plugin_version.get_version` called through XAPI's
 * `host.call_plugin` and compared with the minimum the OpenStack release needs.
 *
 * Sources (setting `dom0_plugin_source`, path in `dom0_plugin_path`):
 *  - `bundled`: xenstack's own small set, plugins/xenserver/dom0 in the repository (lab and tests);
 *  - `directory`: a directory of plugin files (e.g. os-xenapi's os_xenapi/dom0/etc/xapi.d/plugins);
 *  - `tarball`: an os-xenapi release tarball by path or http(s) URL; its `<top>/os_xenapi/dom0/etc/xapi.d/plugins/*`
 *    is what gets installed, as os-xenapi lays it out.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join, posix } from 'node:path'
import { promisify } from 'node:util'
import type { Xapi } from '@xenstack/xenapi'
import type { NativeTaskContext } from '../../engine/tasks.js'
import type { ResourceChange } from '../../engine/types.js'
import {
  DirectoryResource,
  shellQuote,
  type CheckResult,
  type Executor,
  type NodeContext,
  type Resource,
} from '../../node/index.js'
import type { OpenStackSeries } from '../compute/release.js'
import { settingValue } from '../context.js'
import { converge } from './converge.js'
import { shippedPluginsDir } from '../shipped.js'

const run = promisify(execFile)

export const DOM0_PLUGINS_DIR = '/etc/xapi.d/plugins'
export const PLUGIN_MODE = 0o755
/** Where os-xenapi keeps its dom0 plugins, inside its source tree. */
export const OS_XENAPI_PLUGINS_SUBDIR = 'os_xenapi/dom0/etc/xapi.d/plugins'

export type Dom0PluginSource =
  { kind: 'bundled' } | { kind: 'directory'; path: string } | { kind: 'tarball'; path: string }

export interface PluginFile {
  name: string
  content: Buffer
  sha256: string
}

/** xenstack's own set: plugins/xenserver/dom0 next to the package (see its README). */
export function bundledDom0PluginsDir(): string {
  return join(shippedPluginsDir(), 'xenserver', 'dom0')
}

/** Files that are plugins (documentation and byte code are not installed). */
const isPluginName = (name: string): boolean =>
  !/^(README|LICENSE)|\.(md|txt|rst|pyc|pyo)$|^\./i.test(name) && /^[A-Za-z0-9_.-]+$/.test(name)

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** The plugin files of a directory (regular files only, sorted); an error when there are none. */
export async function pluginFilesIn(dir: string, what = dir): Promise<PluginFile[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (e) {
    throw new Error(`dom0 plugins: cannot read ${what}: ${(e as Error).message}`)
  }
  const out: PluginFile[] = []
  for (const name of names.sort()) {
    if (!isPluginName(name)) continue
    const p = join(dir, name)
    if (!(await stat(p)).isFile()) continue
    const content = await readFile(p)
    out.push({ name, content, sha256: sha256(content) })
  }
  if (out.length === 0) throw new Error(`dom0 plugins: ${what} holds no plugin files`)
  return out
}

/** Downloads (http/https) or reads a tarball, extracts os-xenapi's dom0 plugin directory, returns its files. */
export async function pluginFilesFromTarball(
  pathOrUrl: string,
  opts: { signal?: AbortSignal } = {},
): Promise<PluginFile[]> {
  const work = await mkdtemp(join(tmpdir(), 'xenstack-dom0-plugins-'))
  try {
    let archive = pathOrUrl
    if (/^https?:\/\//.test(pathOrUrl)) {
      const res = await fetch(pathOrUrl, { signal: opts.signal ?? AbortSignal.timeout(300_000) })
      if (!res.ok) throw new Error(`dom0 plugins: GET ${pathOrUrl} answered ${res.status} ${res.statusText}`)
      archive = join(work, 'release.tar.gz')
      await writeFile(archive, Buffer.from(await res.arrayBuffer()))
    }
    const listing = await run('tar', ['-tzf', archive], { maxBuffer: 64 * 1024 * 1024 }).catch((e: Error) => {
      throw new Error(`dom0 plugins: ${pathOrUrl} is not a readable .tar.gz: ${e.message.split('\n')[0]}`)
    })
    // <top>/os_xenapi/dom0/etc/xapi.d/plugins/<file>, exactly one level below the plugins directory
    const members = listing.stdout
      .split('\n')
      .filter((m) => {
        const i = m.indexOf(`${OS_XENAPI_PLUGINS_SUBDIR}/`)
        return i >= 0 && !m.slice(i + OS_XENAPI_PLUGINS_SUBDIR.length + 1).includes('/') && !m.endsWith('/')
      })
      .filter((m) => !posix.normalize(m).startsWith('..') && !m.startsWith('/'))
    if (members.length === 0)
      throw new Error(
        `dom0 plugins: ${pathOrUrl} has no ${OS_XENAPI_PLUGINS_SUBDIR}/ (expected an os-xenapi source release tarball)`,
      )
    const dirs = new Set(members.map((m) => posix.dirname(m)))
    if (dirs.size > 1) throw new Error(`dom0 plugins: ${pathOrUrl} has more than one plugin directory: ${[...dirs]}`)
    const out = join(work, 'x')
    await run('mkdir', ['-p', out])
    await run('tar', ['-xzf', archive, '-C', out, '--no-same-owner', '--', ...members])
    return await pluginFilesIn(join(out, [...dirs][0]), `${pathOrUrl}:${[...dirs][0]}`)
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

export async function pluginFilesFrom(source: Dom0PluginSource, signal?: AbortSignal): Promise<PluginFile[]> {
  if (source.kind === 'bundled') return pluginFilesIn(bundledDom0PluginsDir(), 'the bundled dom0 plugin set')
  if (source.kind === 'directory') return pluginFilesIn(source.path)
  return pluginFilesFromTarball(source.path, { signal })
}

/**
 * The plugin files in dom0's plugin directory: one command lists every file's SHA-256 and mode; only files whose
 * digest or mode differ are written (atomically, 0755). Files of other plugins in the directory are left alone.
 */
export class Dom0PluginFiles implements Resource {
  readonly id: string
  constructor(
    readonly files: readonly PluginFile[],
    readonly dir = DOM0_PLUGINS_DIR,
  ) {
    this.id = `dom0 plugins ${files.map((f) => f.name).join(', ')} in ${dir}`
  }

  async #state(ctx: NodeContext): Promise<Map<string, { sha256: string; mode: number }>> {
    const paths = this.files.map((f) => shellQuote(posix.join(this.dir, f.name))).join(' ')
    const r = await ctx.exec.run(
      `for f in ${paths}; do [ -f "$f" ] && echo "$(stat -c %a "$f") $(sha256sum < "$f" | cut -d' ' -f1) $f"; done; true`,
    )
    const out = new Map<string, { sha256: string; mode: number }>()
    for (const line of r.stdout.split('\n')) {
      const m = /^([0-7]+) ([0-9a-f]{64}) (.+)$/.exec(line)
      if (m) out.set(posix.basename(m[3]), { mode: parseInt(m[1], 8), sha256: m[2] })
    }
    return out
  }

  #diff(state: Map<string, { sha256: string; mode: number }>): string[] {
    const diff: string[] = []
    for (const f of this.files) {
      const s = state.get(f.name)
      if (!s) diff.push(`+ ${f.name} (sha256 ${f.sha256.slice(0, 12)}…, 0755)`)
      else if (s.sha256 !== f.sha256)
        diff.push(`~ ${f.name}: sha256 ${s.sha256.slice(0, 12)}… → ${f.sha256.slice(0, 12)}…`)
      else if (s.mode !== PLUGIN_MODE) diff.push(`~ ${f.name}: mode 0${s.mode.toString(8)} → 0755`)
    }
    return diff
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const diff = this.#diff(await this.#state(ctx))
    const desired = `${this.files.length} files, 0755`
    return { inSync: diff.length === 0, current: diff.length ? 'differs' : desired, desired, diff }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const state = await this.#state(ctx)
    for (const f of this.files) {
      const s = state.get(f.name)
      const path = posix.join(this.dir, f.name)
      if (!s || s.sha256 !== f.sha256) await ctx.exec.put(path, f.content, { mode: PLUGIN_MODE })
      else if (s.mode !== PLUGIN_MODE) await ctx.exec.run(['chmod', '0755', '--', path])
    }
  }
}

export function dom0PluginResources(files: readonly PluginFile[], dir = DOM0_PLUGINS_DIR): Resource[] {
  return [new DirectoryResource({ path: dir }), new Dom0PluginFiles(files, dir)]
}

// -- the version check ----------------------------------------------------------------------------------------

export interface RequiredPluginVersion {
  /** The plugin file the release's client calls. */
  plugin: string
  /** Minimum version: same major, minor at least this. */
  version: string
}

/**
 * The dom0 plugin version each release's XenAPI client requires at session creation (os-xenapi's and, before
 * Ocata, nova's `PLUGIN_REQUIRED_VERSION`). Before Ocata the plugins lived in nova's tree and the version file was
 * `nova_plugin_version`; Newton added the `.py` suffix; Ocata moved them to os-xenapi (`dom0_plugin_version.py`,
 * 2.0: the non-`.py` files dropped), and 2.1 (`ovs_create_port`) has been required since Pike.
 * Sources: reference/xenserver-integration.md §16 (history, 1.7 before Ocata, 2.1 in os-xenapi) and nova's
 * session.py (1.2 in Juno/Kilo).
 */
export const REQUIRED_DOM0_PLUGIN_VERSION: Record<OpenStackSeries, RequiredPluginVersion> = {
  juno: { plugin: 'nova_plugin_version', version: '1.2' },
  kilo: { plugin: 'nova_plugin_version', version: '1.2' },
  liberty: { plugin: 'nova_plugin_version', version: '1.3' },
  mitaka: { plugin: 'nova_plugin_version', version: '1.7' },
  newton: { plugin: 'nova_plugin_version.py', version: '1.8' },
  ocata: { plugin: 'dom0_plugin_version.py', version: '2.0' },
  pike: { plugin: 'dom0_plugin_version.py', version: '2.1' },
  queens: { plugin: 'dom0_plugin_version.py', version: '2.1' },
  rocky: { plugin: 'dom0_plugin_version.py', version: '2.1' },
  stein: { plugin: 'dom0_plugin_version.py', version: '2.1' },
  train: { plugin: 'dom0_plugin_version.py', version: '2.1' },
  ussuri: { plugin: 'dom0_plugin_version.py', version: '2.1' },
}

export class Dom0PluginVersionError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'Dom0PluginVersionError'
  }
}

/**
 * Calls the release's version plugin on the host through `host.call_plugin` and checks it; returns the version
 * found. Errors say which host, which plugin, what was found and what the release needs.
 */
export async function checkDom0PluginVersion(
  xapi: Xapi,
  host: { ref: string; name: string },
  series: OpenStackSeries,
): Promise<string> {
  const need = REQUIRED_DOM0_PLUGIN_VERSION[series]
  const source = 'set dom0_plugin_source to the plugins of that release (an os-xenapi release tarball or directory)'
  try {
    return await xapi.checkPluginVersion(host.ref, need.version, { plugin: need.plugin })
  } catch (e) {
    const err = e as Error & { code?: string; found?: string; params?: string[] }
    const text = `${err.code ?? ''} ${err.message}`
    if (/XENAPI_MISSING_PLUGIN/.test(text))
      throw new Dom0PluginVersionError(
        `host ${host.name}: OpenStack ${series} checks ${need.plugin} (version ${need.version} or a later minor), ` +
          `which is not installed in ${DOM0_PLUGINS_DIR}; ${source}`,
      )
    const found = /found ([0-9.]+)|got ([0-9.]+)/i.exec(err.message)
    if (err.name === 'PluginVersionMismatchError' || found)
      throw new Dom0PluginVersionError(
        `host ${host.name}: ${need.plugin} reports version ${err.found ?? found?.[1] ?? found?.[2] ?? '?'}, but ` +
          `OpenStack ${series} needs ${need.version} (same major, minor at least ${need.version.split('.')[1]}); ${source}`,
      )
    throw new Dom0PluginVersionError(`host ${host.name}: ${need.plugin}.get_version failed: ${err.message}`)
  }
}

// -- the native -------------------------------------------------------------------------------------------------

/** The plugin source the settings select; undefined when installing dom0 plugins is switched off. */
export function dom0PluginSourceOf(ctx: Pick<NativeTaskContext, 'node' | 'settings'>): Dom0PluginSource | undefined {
  const v = (k: string) => settingValue(ctx.settings ?? {}, 'xenserver', k)
  const install = v('install_dom0_plugins')
  if (install === false || install === 'false') return undefined
  const kind = v('dom0_plugin_source') ?? 'bundled'
  if (kind === 'bundled') return { kind }
  const path = v('dom0_plugin_path')
  if (kind !== 'directory' && kind !== 'tarball')
    throw new Error(
      `node ${ctx.node}: xenserver.dom0_plugin_source is ${JSON.stringify(kind)}; expected bundled, directory or tarball`,
    )
  if (typeof path !== 'string' || path.trim() === '')
    throw new Error(`node ${ctx.node}: xenserver.dom0_plugin_source is ${kind} but xenserver.dom0_plugin_path is empty`)
  return { kind, path: path.trim() }
}

export interface InstallDom0PluginsOptions {
  dryRun?: boolean
  log?: (line: string) => void
  signal?: AbortSignal
}

/** Installs the set on one dom0 (through its executor), then checks the version through XAPI. */
export async function installDom0Plugins(
  dom0: Executor,
  xapi: Xapi,
  host: { ref: string; name: string },
  source: Dom0PluginSource,
  series: OpenStackSeries,
  opts: InstallDom0PluginsOptions = {},
): Promise<ResourceChange[]> {
  const files = await pluginFilesFrom(source, opts.signal)
  const changes = await converge(dom0, dom0PluginResources(files), opts)
  // On a dry run the files may not be there yet: the check would fail for the wrong reason.
  if (!opts.dryRun) {
    const found = await checkDom0PluginVersion(xapi, host, series)
    opts.log?.(`${host.name}: ${REQUIRED_DOM0_PLUGIN_VERSION[series].plugin} reports ${found}`)
  }
  return changes
}
