/**
 * The plugins shipped with xenstack (the repository's `plugins/<name>/`, today only `xenserver`), the way the
 * built-in releases are shipped with `packages/xenstack/releases/`: found next to the package, and installed into
 * a state store the first time xenstack opens it. Each shipped name==version is offered once per data directory
 * (recorded in `<data-dir>/plugins/shipped.json`), so `plugins remove` sticks: a removed shipped plugin is not
 * installed again, while a newer shipped version of the same major replaces an older installed one.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  renameSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { builtinReleases, type Release } from '../releases/release.js'
import { buildPlugin, installPlugin, PluginLifecycleError, updatePlugin } from '../plugins/lifecycle.js'
import { loadPluginDir, type LoadOptions } from '../plugins/loader.js'
import { compareVersions } from '../plugins/schemas.js'
import { parseYaml } from '../plugins/source.js'
import { pluginMajor, type StateStore } from '../state/store.js'

/** Where the shipped plugins live: `<repo>/plugins` (dist/src/integration/shipped.js → five levels up). */
export function shippedPluginsDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', '..', 'plugins')
}

/** The directory of one shipped plugin, e.g. `shippedPluginDir('xenserver')`. */
export function shippedPluginDir(name: string): string {
  const dir = join(shippedPluginsDir(), name)
  if (!existsSync(join(dir, 'metadata.yaml')))
    throw new Error(`shipped plugin "${name}" not found: expected ${join(dir, 'metadata.yaml')}`)
  return dir
}

/** `name==version` from a plugin's metadata.yaml (undefined when it does not parse or says neither). */
function declaredRef(dir: string): string | undefined {
  const meta = parseYaml('metadata.yaml', readFileSync(join(dir, 'metadata.yaml'), 'utf8')).source?.data as
    { name?: unknown; version?: unknown } | undefined
  return typeof meta?.name === 'string' && typeof meta.version === 'string'
    ? `${meta.name}==${meta.version}`
    : undefined
}

/** The load options a shipped plugin is checked with: the shipped release it declares (core tasks, components). */
export function shippedLoadOptions(dir: string): LoadOptions {
  const declared = loadPluginDir(dir).plugin?.metadata.releases ?? []
  const release: Release =
    builtinReleases().find((r) => declared.some((d: any) => String(d?.version) === r.version)) ?? builtinReleases()[0]
  return { coreTasks: release.tasks, releaseName: release.name, releaseComponents: release.components }
}

export interface ShippedInstallResult {
  /** `name==version` installed or updated by this call. */
  installed: string[]
  /** One sentence per shipped plugin that could not be installed (the store is left as it was for it). */
  notes: string[]
}

const OFFERED_FILE = 'shipped.json'

/** `XENSTACK_SHIPPED_PLUGINS=none`: do not install the shipped plugins into the store being opened. */
export const SHIPPED_PLUGINS_ENV = 'XENSTACK_SHIPPED_PLUGINS'

function offeredPath(store: StateStore): string {
  return join(store.dataDir, 'plugins', OFFERED_FILE)
}

function readOffered(store: StateStore): string[] {
  const file = offeredPath(store)
  if (!existsSync(file)) return []
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as { offered?: unknown }
    return Array.isArray(data.offered) ? data.offered.filter((x): x is string => typeof x === 'string') : []
  } catch {
    // A damaged marker: offering again is harmless (an installed plugin is never installed twice).
    return []
  }
}

function writeOffered(store: StateStore, offered: string[]): void {
  const file = offeredPath(store)
  mkdirSync(dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}`
  writeFileSync(tmp, JSON.stringify({ offered: [...new Set(offered)].sort() }, null, 2) + '\n')
  renameSync(tmp, file)
}

/**
 * Installs every shipped plugin version not offered to this store before (built to a temporary archive and
 * installed like `plugins install`, checksums and validation included). Idempotent and safe when two processes
 * open a fresh store at once (the second finds the plugin installed). The CLI calls it whenever it opens the
 * state store (`openCliStateStore`), so a fresh store lists the shipped plugins.
 */
export function ensureShippedPlugins(store: StateStore, root = shippedPluginsDir()): ShippedInstallResult {
  const result: ShippedInstallResult = { installed: [], notes: [] }
  // An operator (or a test of other plugins) can keep a data directory free of them.
  if (process.env[SHIPPED_PLUGINS_ENV] === 'none') return result
  if (!existsSync(root)) return result
  const offered = readOffered(store)
  const before = offered.length
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name)
    if (!existsSync(join(dir, 'metadata.yaml'))) continue
    // Every CLI start passes here: an offered version is recognised from metadata.yaml alone, without the full
    // load and validation (schemas, graph) an install needs.
    const declared = declaredRef(dir)
    if (declared && offered.includes(declared)) continue
    const options = shippedLoadOptions(dir)
    const loaded = loadPluginDir(dir, options)
    if (!loaded.plugin || loaded.errors.length) {
      result.notes.push(
        `shipped plugin ${dir} is invalid and was not installed: ${loaded.errors.map((e) => `${e.file}:${e.line}: ${e.message}`).join('; ')}`,
      )
      continue
    }
    const ref = `${loaded.plugin.name}==${loaded.plugin.version}`
    if (offered.includes(ref)) continue
    const installed = store.plugins.byName(loaded.plugin.name)
    if (installed.some((p) => p.version === loaded.plugin!.version)) {
      offered.push(ref)
      continue
    }
    const out = mkdtempSync(join(tmpdir(), 'xenstack-shipped-'))
    try {
      const built = buildPlugin(dir, out, options)
      const older = installed.find(
        (p) =>
          pluginMajor(p.version) === pluginMajor(loaded.plugin!.version) &&
          compareVersions(p.version, loaded.plugin!.version) < 0,
      )
      if (older) updatePlugin(store, built.file, options)
      else if (installed.some((p) => pluginMajor(p.version) === pluginMajor(loaded.plugin!.version))) {
        // A newer version of the same major is installed: the operator updated past the shipped one.
      } else if (offered.some((o) => o.startsWith(`${loaded.plugin!.name}==`))) {
        // An earlier shipped version was offered and then removed by the operator: respect that.
      } else installPlugin(store, built.file, options)
      if (store.plugins.get(loaded.plugin.name, loaded.plugin.version)) result.installed.push(ref)
      offered.push(ref)
    } catch (e) {
      if (e instanceof PluginLifecycleError && /already installed/.test(e.message)) offered.push(ref)
      else {
        result.notes.push(`shipped plugin ${ref} was not installed: ${(e as Error).message}`)
        // A conflict (e.g. another plugin defines the same component) is not retried on every start.
        if (e instanceof PluginLifecycleError && e.code === 'conflict') offered.push(ref)
      }
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  }
  if (offered.length !== before) writeOffered(store, offered)
  return result
}
