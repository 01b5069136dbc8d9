/**
 * Plugin lifecycle: check, build (validate, substitute build tokens, package as .tar.gz with checksums),
 * install, update (same major only), remove (refused while enabled). Installed plugins are recorded in the
 * state store; their files are unpacked under `<data-dir>/plugins/<name>-<version>/`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import {
  CHECKSUMS_FILE,
  FUEL_CHECKSUMS_FILE,
  checksumsText,
  readTarGz,
  sha256,
  verifyChecksums,
  writeTarGz,
  type ArchiveEntry,
} from './archive.js'
import {
  loadPluginDir,
  loadPluginFiles,
  substituteTokens,
  parseBranding,
  type LoadOptions,
  type LoadedPlugin,
  type PluginFiles,
} from './loader.js'
import { ValidationError, type Issue } from './source.js'
import { compareVersions } from './schemas.js'
import { pluginMajor, StateError, type InstalledPlugin, type PluginData, type StateStore } from '../state/store.js'

export class PluginLifecycleError extends Error {
  constructor(
    message: string,
    readonly code: 'invalid' | 'conflict' | 'not_found',
    readonly hint?: string,
  ) {
    super(message)
    this.name = 'PluginLifecycleError'
  }
}

export interface BuildResult {
  file: string
  sha256: string
  name: string
  version: string
  packageVersion: string
  files: number
  warnings: Issue[]
}

const isText = (b: Buffer) => !b.includes(0) && Buffer.from(b.toString('utf8'), 'utf8').equals(b)

/** Validates a plugin directory and writes `<out>/<name>-<version>.tar.gz`. Throws ValidationError on errors. */
export function buildPlugin(dir: string, outDir: string, options: LoadOptions = {}): BuildResult {
  const r = loadPluginDir(dir, options)
  if (r.errors.length || !r.plugin) throw new ValidationError(`plugin ${dir}`, r.issues)
  const p = r.plugin
  const defines = {
    ...(r.files.has('branding.inc') ? parseBranding(r.files.get('branding.inc')!.toString('utf8')) : {}),
    ...(options.defines ?? {}),
  }
  const prefix = `${p.name}-${p.version}`
  const entries: ArchiveEntry[] = []
  for (const [path, data] of r.files) {
    if (path.endsWith('.tar.gz') && basename(path).startsWith(prefix)) continue
    // Like the Makefile's sed over every file — text files only, so binaries stay intact.
    const content = isText(data) ? Buffer.from(substituteTokens(data.toString('utf8'), defines).text, 'utf8') : data
    let mode = 0o644
    const onDisk = join(r.dir, path)
    if (existsSync(onDisk)) mode = statSync(onDisk).mode & 0o777
    entries.push({ path, data: content, mode })
  }
  const checksums = Buffer.from(checksumsText(entries), 'utf8')
  const archive = writeTarGz([
    ...entries.map((e) => ({ ...e, path: `${prefix}/${e.path}` })),
    { path: `${prefix}/${CHECKSUMS_FILE}`, data: checksums, mode: 0o644 },
  ])
  mkdirSync(outDir, { recursive: true })
  const file = join(outDir, `${prefix}.tar.gz`)
  writeFileSync(file, archive)
  return {
    file,
    sha256: sha256(archive),
    name: p.name,
    version: p.version,
    packageVersion: p.packageVersion,
    files: entries.length,
    warnings: r.issues.filter((i) => i.severity === 'warning'),
  }
}

export interface OpenedArchive {
  plugin: LoadedPlugin
  files: PluginFiles
  modes: Map<string, number>
  archiveSha256: string
  issues: Issue[]
}

/** Reads and verifies an archive (checksums, then full validation against the core tasks given). */
export function openArchive(file: string, options: LoadOptions = {}): OpenedArchive {
  if (!existsSync(file))
    throw new PluginLifecycleError(
      `${file}: no such file`,
      'not_found',
      'give the path of a .tar.gz made by "xenstack plugins build"',
    )
  const buf = readFileSync(file)
  let entries: ArchiveEntry[]
  try {
    entries = readTarGz(buf, file)
  } catch (e) {
    throw new PluginLifecycleError((e as Error).message, 'invalid')
  }
  const tops = new Set(entries.map((e) => e.path.split('/')[0]))
  if (tops.size !== 1 || entries.some((e) => !e.path.includes('/'))) {
    throw new PluginLifecycleError(
      `${file}: expected every file under one top directory <name>-<version>/, found ${[...tops].join(', ')}`,
      'invalid',
    )
  }
  const files: PluginFiles = new Map()
  const modes = new Map<string, number>()
  for (const e of entries) {
    const rel = e.path.slice(e.path.indexOf('/') + 1)
    if (rel.split('/').some((s) => s === '..' || s === ''))
      throw new PluginLifecycleError(`${file}: unsafe path in archive: ${e.path}`, 'invalid')
    files.set(rel, e.data)
    modes.set(rel, e.mode)
  }
  const problems = verifyChecksums(files)
  if (problems.length)
    throw new PluginLifecycleError(`${file}: the archive is damaged: ${problems.join('; ')}`, 'invalid')
  files.delete(CHECKSUMS_FILE)
  files.delete(FUEL_CHECKSUMS_FILE)
  const r = loadPluginFiles(files, file, options)
  if (r.errors.length || !r.plugin) throw new ValidationError(`plugin archive ${file}`, r.issues)
  return { plugin: r.plugin, files, modes, archiveSha256: sha256(buf), issues: r.issues }
}

export function pluginData(p: LoadedPlugin): PluginData {
  return {
    metadata: p.metadata,
    attributes: p.attributes,
    components: p.components,
    deploymentTasks: p.deploymentTasks,
    legacyTasks: p.legacyTasks,
    nodeRoles: p.nodeRoles,
    volumes: p.volumes,
    networkRoles: p.networkRoles,
    nodeConfig: p.nodeConfig,
    nicConfig: p.nicConfig,
    bondConfig: p.bondConfig,
    nodeTags: p.nodeTags,
  }
}

function unpack(store: StateStore, a: OpenedArchive): string {
  const dir = store.pluginDir(a.plugin.name, a.plugin.version)
  const tmp = `${dir}.partial-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  for (const [path, data] of a.files) {
    const target = join(tmp, path)
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(target, data, { mode: a.modes.get(path) ?? 0o644 })
  }
  mkdirSync(tmp, { recursive: true })
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dirname(dir), { recursive: true })
  renameSync(tmp, dir)
  return dir
}

function record(a: OpenedArchive, dir: string): Omit<InstalledPlugin, 'id' | 'installedAt' | 'major'> {
  return {
    name: a.plugin.name,
    version: a.plugin.version,
    packageVersion: a.plugin.packageVersion,
    title: a.plugin.title,
    description: a.plugin.description,
    dir,
    archiveSha256: a.archiveSha256,
    data: pluginData(a.plugin),
    files: [...a.files]
      .map(([path, data]) => ({ path, sha256: sha256(data), size: data.length }))
      .sort((x, y) => x.path.localeCompare(y.path)),
  }
}

/** A component name already defined by another installed plugin (nailgun: AlreadyExists "Plugin X is overlapping with Y"). */
function componentOverlap(store: StateStore, plugin: LoadedPlugin): { message: string; other: string } | undefined {
  for (const other of store.plugins.list()) {
    if (other.name === plugin.name) continue
    for (const c of plugin.components) {
      if ((other.data.components ?? []).some((o: { name?: string }) => o?.name === c.name)) {
        return {
          message: `Plugin ${plugin.name} is overlapping with ${other.name}==${other.version}: component "${c.name}" is already defined by ${other.name}`,
          other: `${other.name}==${other.version}`,
        }
      }
    }
  }
  return undefined
}

/** Installs an archive. Another version of the same major is refused (that is `update`); other majors coexist. */
export function installPlugin(store: StateStore, file: string, options: LoadOptions = {}): InstalledPlugin {
  const a = openArchive(file, options)
  const { name, version } = a.plugin
  if (store.plugins.get(name, version)) {
    throw new PluginLifecycleError(
      `plugin ${name}==${version} is already installed`,
      'conflict',
      `remove it first with "xenstack plugins remove ${name}==${version}"`,
    )
  }
  const overlap = componentOverlap(store, a.plugin)
  if (overlap) {
    throw new PluginLifecycleError(
      overlap.message,
      'conflict',
      `remove ${overlap.other} first, or rename the component`,
    )
  }
  const sameMajor = store.plugins.byName(name).find((p) => pluginMajor(p.version) === pluginMajor(version))
  if (sameMajor) {
    throw new PluginLifecycleError(
      `plugin ${name}==${sameMajor.version} is installed with the same major version (${pluginMajor(version)}) as ${version}`,
      'conflict',
      `use "xenstack plugins update ${file}" to replace it`,
    )
  }
  const dir = unpack(store, a)
  try {
    return store.transaction(() => store.plugins.add(record(a, dir)))
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
}

/** Replaces the installed version of the same major with the archive's (newer) version. */
export function updatePlugin(
  store: StateStore,
  file: string,
  options: LoadOptions = {},
): { from: InstalledPlugin; to: InstalledPlugin } {
  const a = openArchive(file, options)
  const { name, version } = a.plugin
  const installed = store.plugins.byName(name)
  if (!installed.length) {
    throw new PluginLifecycleError(
      `plugin ${name} is not installed`,
      'not_found',
      `install it with "xenstack plugins install ${file}"`,
    )
  }
  const old = installed.find((p) => pluginMajor(p.version) === pluginMajor(version))
  if (!old) {
    throw new PluginLifecycleError(
      `cannot update ${name} to ${version}: installed version${installed.length > 1 ? 's' : ''} ${installed.map((p) => p.version).join(', ')} ha${installed.length > 1 ? 've' : 's'} a different major version (updates stay within one major; ${pluginMajor(version)} ≠ ${installed.map((p) => pluginMajor(p.version)).join(', ')})`,
      'invalid',
      `install ${version} alongside with "xenstack plugins install ${file}"`,
    )
  }
  if (compareVersions(version, old.version) <= 0) {
    throw new PluginLifecycleError(
      `cannot update ${name} from ${old.version} to ${version}: not a newer version`,
      'invalid',
    )
  }
  const dir = unpack(store, a)
  try {
    const to = store.transaction(() => store.plugins.replace(old, record(a, dir)))
    if (old.dir !== dir) rmSync(old.dir, { recursive: true, force: true })
    return { from: old, to }
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
}

/** Parses `NAME==VERSION`. */
export function parsePluginRef(ref: string): { name: string; version: string } {
  const m = /^([a-z0-9_-]+)==(\d[\w.-]*)$/.exec(ref)
  if (!m)
    throw new PluginLifecycleError(
      `"${ref}" is not a plugin reference`,
      'invalid',
      'write it as NAME==VERSION, e.g. fuel-plugin-xenserver==4.90.1',
    )
  return { name: m[1], version: m[2] }
}

export function removePlugin(store: StateStore, ref: string): InstalledPlugin {
  const { name, version } = parsePluginRef(ref)
  let removed: InstalledPlugin
  try {
    removed = store.transaction(() => store.plugins.remove(name, version))
  } catch (e) {
    if (e instanceof StateError) {
      const hint =
        e.code === 'conflict'
          ? 'disable the plugin in those environments first'
          : `installed: ${
              store.plugins
                .list()
                .map((p) => `${p.name}==${p.version}`)
                .join(', ') || 'none'
            }`
      throw new PluginLifecycleError(e.message, e.code === 'conflict' ? 'conflict' : 'not_found', hint)
    }
    throw e
  }
  rmSync(removed.dir, { recursive: true, force: true })
  return removed
}
