/**
 * Environments as the plugin framework sees them: creating one from a release, a component selection and the
 * installed plugins (Fuel's wizard + nailgun's cluster creation), changing its settings with the dependency
 * check, and handing the deployment engine what it needs (tasks by source, nodes, models, plugin scripts).
 * The `env` CLI, the server and `lab up` call these; the state store only stores.
 */
import { join } from 'node:path'
import {
  applyBindings,
  checkSettingChange,
  checkSettingChangeForRoles,
  describeBlocking,
  mergeComponents,
  validateSelection,
  type Component,
  type Models,
  type SettingsTree,
} from '@xenstack/restrictions'
import {
  builtinReleases,
  defaultModels,
  findRelease,
  releaseFromJSON,
  releaseToJSON,
  type Release,
} from '../releases/release.js'
import { pluginMajor, type Environment, type InstalledPlugin, type StateStore } from '../state/store.js'
import { compareVersions } from './schemas.js'
import { generateValues, isCompatible, mergeSettings, validateEnvironmentSettings } from './settings.js'

export class EnvironmentError extends Error {
  constructor(
    message: string,
    /** Every problem, one sentence each. */
    readonly problems: string[],
  ) {
    super(`${message}: ${problems.join('; ')}`)
    this.name = 'EnvironmentError'
  }
}

/** A release by name or version: the shipped ones first, then those recorded in the store. */
export function resolveRelease(store: StateStore, key?: string): Release {
  const shipped = builtinReleases()
  if (!key) return shipped[0]
  const found =
    findRelease(shipped, key) ??
    findRelease(
      store.releases.list().map((r) => releaseFromJSON(r.data)),
      key,
    )
  if (!found) {
    throw new EnvironmentError(`no release "${key}"`, [
      `known releases: ${[...shipped.map((r) => r.name), ...store.releases.list().map((r) => r.name)].join(', ')}`,
    ])
  }
  return found
}

const asInfo = (p: InstalledPlugin) => ({ ...p, data: p.data })

/** The installed plugins compatible with a release, latest version first per name. */
export function compatiblePlugins(store: StateStore, release: Release): InstalledPlugin[] {
  return store.plugins
    .list()
    .filter((p) => isCompatible(asInfo(p), release))
    .sort((a, b) => a.name.localeCompare(b.name) || compareVersions(b.version, a.version))
}

function chooseVersions(
  plugins: InstalledPlugin[],
  wanted: { name: string; version?: string }[],
): Map<string, InstalledPlugin> {
  const chosen = new Map<string, InstalledPlugin>()
  for (const p of plugins) if (!chosen.has(p.name)) chosen.set(p.name, p)
  for (const w of wanted) {
    const p = plugins.find((x) => x.name === w.name && (!w.version || x.version === w.version))
    if (p) chosen.set(p.name, p)
  }
  return chosen
}

/** The component registry of a release plus the chosen version of each compatible plugin. */
export function componentsFor(release: Release, chosen: Map<string, InstalledPlugin>): Component[] {
  return mergeComponents(
    release.components,
    [...chosen.values()].map((p) => ({ plugin: p.name, components: p.data.components as Component[] })),
  )
}

function setPath(tree: Record<string, any>, path: string, value: unknown): void {
  const keys = path.split('.')
  let cur = tree
  for (const k of keys.slice(0, -1)) {
    if (!cur[k] || typeof cur[k] !== 'object') throw new Error(`no setting at ${path}`)
    cur = cur[k]
  }
  if (!(keys.at(-1)! in cur)) throw new Error(`no setting at ${path}`)
  cur[keys.at(-1)!] = value
}

export interface CreateEnvironmentInput {
  name: string
  /** Release name or version (default: the shipped release). */
  release?: string
  /** Wizard selection; default: the release's default components. */
  components?: string[]
  /** Plugins to enable (beyond those enabled by a selected component), optionally at a version. */
  plugins?: { name: string; version?: string }[]
  /** Setting values by path (`fuel-plugin-xenserver.password.value`, `common.debug.value`). */
  settings?: Record<string, unknown>
  nodes?: { name: string; roles?: string[]; data?: Record<string, any> }[]
}

/**
 * Creates an environment: validates the component selection (every violation), applies the components'
 * bindings, enables the plugins whose components are selected (nailgun's enable_plugins_by_components) and
 * those asked for, generates values, applies `settings`, validates them (every error, with labels) and writes
 * everything in one transaction. Nothing is written when anything is invalid.
 */
export function createEnvironment(store: StateStore, input: CreateEnvironmentInput): Environment {
  const release = resolveRelease(store, input.release)
  const plugins = compatiblePlugins(store, release)
  const unknown = (input.plugins ?? []).filter(
    (w) => !plugins.some((p) => p.name === w.name && (!w.version || p.version === w.version)),
  )
  if (unknown.length) {
    throw new EnvironmentError(
      `cannot create environment "${input.name}"`,
      unknown.map(
        (w) =>
          `plugin ${w.name}${w.version ? `==${w.version}` : ''} is not installed or not compatible with ${release.name} (${release.version})`,
      ),
    )
  }
  const chosen = chooseVersions(plugins, input.plugins ?? [])
  const registry = componentsFor(release, chosen)
  const selection = input.components ?? release.components.filter((c) => c.default).map((c) => c.name)
  const violations = validateSelection(registry, selection, { requiredTypes: release.requiredComponentTypes })
  if (violations.length)
    throw new EnvironmentError(
      `cannot create environment "${input.name}"`,
      violations.map((v) => v.message),
    )

  const enabled = new Set((input.plugins ?? []).map((p) => p.name))
  for (const c of registry) if (c.source !== 'release' && selection.includes(c.name)) enabled.add(c.source!)
  const enabledList = [...chosen.values()].map((p) => ({
    name: p.name,
    version: p.version,
    enabled: enabled.has(p.name),
  }))
  let settings: SettingsTree = generateValues(mergeSettings(release, [...chosen.values()].map(asInfo), enabledList))
  const models: Models = defaultModels(release, {
    settings,
    cluster: { ...(defaultModels(release).cluster as object) },
  })
  applyBindings(registry, selection, models)
  settings = models.settings as SettingsTree
  const problems: string[] = []
  for (const [path, value] of Object.entries(input.settings ?? {})) {
    try {
      setPath(settings, path, value)
    } catch (e) {
      problems.push(`${(e as Error).message} (expected a path like group.setting.value)`)
    }
  }
  problems.push(...validateEnvironmentSettings(release, settings, { cluster: models.cluster }).map((e) => e.message))
  if (problems.length) throw new EnvironmentError(`cannot create environment "${input.name}"`, problems)

  return store.transaction(() => {
    // The release is recorded with the environment, so readers of the store (engine, server) find it there.
    store.releases.upsert({
      name: release.name,
      version: release.version,
      operatingSystem: release.operatingSystem,
      source: release.file && builtinReleases().includes(release) ? 'builtin' : (release.file ?? 'store'),
      data: releaseToJSON(release),
    })
    const env = store.environments.create({ name: input.name, release: release.name, components: selection, settings })
    store.environments.setCluster(env.name, models.cluster as Record<string, any>)
    for (const p of enabledList) store.environments.setPlugin(env.name, p.name, p.version, p.enabled)
    for (const n of input.nodes ?? []) store.environments.addNode(env.name, n)
    return store.environments.require(env.name)
  })
}

/** The models restrictions and task conditions of this environment are evaluated against. */
export function environmentModels(store: StateStore, name: string, options: { reveal?: boolean } = {}): Models {
  const env = store.environments.require(name)
  const release = resolveRelease(store, env.release)
  return defaultModels(release, {
    settings: store.environments.settings(name, options),
    cluster: { ...(defaultModels(release).cluster as object), ...store.environments.cluster(name), name },
  })
}

/**
 * Changes settings by path. Refused (nothing saved) when a change would make an enabled setting, plugin or
 * assigned role's `disable` restriction newly hold, or when the result does not validate.
 */
export function changeSettings(store: StateStore, name: string, changes: Record<string, unknown>): void {
  const env = store.environments.require(name)
  const release = resolveRelease(store, env.release)
  const models = environmentModels(store, name, { reveal: true })
  let settings = models.settings as SettingsTree
  const roles = { ...release.roles }
  for (const p of store.plugins.list()) Object.assign(roles, p.data.nodeRoles ?? {})
  const inUse = store.environments.nodes(name).flatMap((n) => n.roles)
  const problems: string[] = []
  for (const [path, value] of Object.entries(changes)) {
    const label = labelAt(settings, path)
    // Enabling a plugin that brings wizard components from Settings would bypass their compatibility checks
    // (Fuel 9.0's loophole): such a plugin is enabled by selecting one of its components instead.
    const enabling = /^([^.]+)\.metadata\.enabled$/.exec(path)
    const ep = enabling && value === true ? env.plugins.find((p) => p.name === enabling[1]) : undefined
    const provided = ep
      ? ((store.plugins.get(ep.name, ep.version)?.data.components ?? []) as Component[]).map((c) => c.name)
      : []
    if (provided.length && !provided.some((c) => env.components.includes(c))) {
      problems.push(
        `Cannot enable "${label}" in settings: it provides the component${provided.length > 1 ? 's' : ''} ${provided.join(', ')}; select ${provided.length > 1 ? 'one of them' : 'it'} in the environment's components instead (its compatibility is checked there)`,
      )
      continue
    }
    const blocking = [
      ...checkSettingChange(settings, path, value, models),
      ...checkSettingChangeForRoles(settings, path, value, roles, inUse, models),
    ]
    if (blocking.length) {
      problems.push(describeBlocking(label, blocking))
      continue
    }
    settings = JSON.parse(JSON.stringify(settings)) as SettingsTree
    try {
      setPath(settings, path, value)
    } catch (e) {
      problems.push((e as Error).message)
    }
  }
  if (!problems.length) {
    problems.push(...validateEnvironmentSettings(release, settings, { cluster: models.cluster }).map((e) => e.message))
  }
  if (problems.length) throw new EnvironmentError(`settings of environment "${name}" not saved`, problems)
  store.transaction(() => {
    store.environments.saveSettings(name, settings)
    for (const [path, value] of Object.entries(changes)) {
      const m = /^([^.]+)\.metadata\.enabled$/.exec(path)
      const plugin = m && env.plugins.find((p) => p.name === m[1])
      if (plugin) store.environments.setPlugin(name, plugin.name, plugin.version, value === true)
    }
  })
}

function labelAt(settings: SettingsTree, path: string): string {
  const [group, key] = path.split('.')
  if (key === 'metadata') return settings[group]?.metadata?.label ?? group
  return settings[group]?.[key]?.label ?? path
}

/**
 * What the deployment engine needs, in its shapes (structurally: SourcedTask, GraphNode, PluginScripts):
 * the release's core tasks then each enabled plugin's, the nodes with roles, the models (passwords revealed:
 * tasks render them into config files) and, per plugin, where its deployment scripts are and where they go.
 */
export function deploymentInputs(store: StateStore, name: string) {
  const env = store.environments.require(name)
  const release = resolveRelease(store, env.release)
  const tasks: { task: Record<string, any>; source: string; location?: string }[] = release.tasks.map((t) => ({
    task: t.task,
    source: 'release',
    location: t.source ? `${t.source.file}:${t.source.locate([t.index]).line}` : undefined,
  }))
  const scripts = new Map<string, { localDir: string; remoteDir: string }>()
  for (const ep of env.plugins.filter((p) => p.enabled)) {
    const p = store.plugins.get(ep.name, ep.version)
    if (!p)
      throw new EnvironmentError(`environment "${name}" cannot be deployed`, [
        `plugin ${ep.name}==${ep.version} is enabled but not installed`,
      ])
    p.data.deploymentTasks.forEach((task, i) =>
      tasks.push({ task, source: p.name, location: `${p.dir}/deployment_tasks.yaml [${i}]` }),
    )
    const rel =
      (p.data.metadata.releases ?? []).find((r: any) => String(r?.version) === release.version) ??
      p.data.metadata.releases?.[0]
    scripts.set(p.name, {
      localDir: join(p.dir, String(rel?.deployment_scripts_path ?? 'deployment_scripts/')),
      remoteDir: `/etc/fuel/plugins/${p.name}-${pluginMajor(p.version)}/`,
    })
  }
  const nodes = store.environments.nodes(name).map((n) => ({ name: n.name, roles: n.roles, facts: n.data.facts ?? {} }))
  // As nailgun did: with controllers and none marked primary, the first controller (by name) becomes the
  // primary-controller (in place of controller: the release's graph has a group for each), so primary-controller
  // tasks (the XenServer plugin's TestVM upload) run on an environment whose roles were assigned from the release's
  // list, which has no primary-controller role to pick.
  if (!nodes.some((n) => n.roles.includes('primary-controller'))) {
    const first = nodes.filter((n) => n.roles.includes('controller')).sort((x, y) => x.name.localeCompare(y.name))[0]
    if (first) first.roles = first.roles.map((r) => (r === 'controller' ? 'primary-controller' : r))
  }
  return { environment: env, release, tasks, nodes, models: environmentModels(store, name, { reveal: true }), scripts }
}
