/**
 * Releases in the shape of fuel-web's openstack.yaml: settings (`attributes_metadata.editable`), components
 * (`components_metadata`), roles (`roles_metadata`), networks (`networks_metadata`), required component
 * types, and the core deployment graph (stages, role groups, library tasks).
 *
 * Two file shapes are read:
 *   - nailgun fixtures: a list of `{pk, model: nailgun.release, extend, fields}`; `extend` is deep-merged under
 *     `fields` (as nailgun's fixture loader does); one entry is picked by name (default: the first available).
 *   - xenstack release files: one map with the `fields` keys at the top, plus `deployment_tasks` inline.
 * A fixture's core graph can come from a separate deployment_tasks.yaml (fuel-web keeps it in fuel-library).
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { componentRegistry, ComponentDefinitionError, type Component, type Models } from '@xenstack/restrictions'
import { parseYaml, ValidationError, type Issue, type YamlSource } from '../plugins/source.js'
import { expressionIssues, settingIssues } from '../plugins/loader.js'
import { checkTaskGraph, type DeploymentTask, type LocatedTask } from '../plugins/graph.js'
import { COMPONENT_NAME_PATTERN } from '../plugins/schemas.js'

export interface Release {
  name: string
  version: string
  operatingSystem: string
  description: string
  state: string
  /** `attributes_metadata.editable`: group → {metadata, setting → {type, value, label, …}}. */
  settings: Record<string, Record<string, any>>
  components: Component[]
  requiredComponentTypes: string[]
  roles: Record<string, any>
  networks: Record<string, any>
  /** NIC, bond and node attributes (5.0.0-era releases), keyed like the settings tree. */
  nicAttributes: Record<string, any>
  bondAttributes: Record<string, any>
  nodeAttributes: Record<string, any>
  /** The 6.1/7.0 cluster wizard (`wizard_metadata`), replaced by components from 8.0 on. */
  wizard: Record<string, any>
  /** The core graph, with positions when read from a file. */
  tasks: LocatedTask[]
  /** Ids of `type: stage` tasks, in dependency order. */
  stages: string[]
  /** Ids of `type: group` tasks (role groups). */
  groups: string[]
  /** Where it was read from. */
  file?: string
}

export interface ReleaseLoadResult {
  release?: Release
  issues: Issue[]
  errors: Issue[]
}

function deepMerge(base: any, over: any): any {
  if (Array.isArray(over) || over === null || typeof over !== 'object') return over === undefined ? base : over
  if (base === null || typeof base !== 'object' || Array.isArray(base)) return over
  const out: Record<string, any> = { ...base }
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v
  return out
}

function fixtureFields(entry: any): any {
  if (!entry || typeof entry !== 'object') return {}
  const own = entry.fields ?? {}
  return entry.extend ? deepMerge(fixtureFields(entry.extend), own) : own
}

/** Orders stage ids so that each comes after the stages it requires. */
function orderStages(tasks: DeploymentTask[]): string[] {
  const stages = tasks.filter((t) => t.type === 'stage')
  const done: string[] = []
  const pending = [...stages]
  while (pending.length) {
    const i = pending.findIndex((s) =>
      (s.requires ?? []).every((r) => done.includes(r) || !stages.some((x) => x.id === r)),
    )
    const [next] = pending.splice(i < 0 ? 0 : i, 1)
    done.push(next.id)
  }
  return done
}

export interface ReleaseLoadOptions {
  /** Which fixture entry (by name) to use; default: the first whose state is not "unavailable". */
  name?: string
  /** A separate core graph file (deployment_tasks.yaml). */
  tasksFile?: string
}

/** Loads a release file (fixture or xenstack shape) and checks it; issues carry positions. */
export function loadReleaseFile(file: string, options: ReleaseLoadOptions = {}): ReleaseLoadResult {
  const issues: Issue[] = []
  const out = (release?: Release): ReleaseLoadResult => ({
    release,
    issues,
    errors: issues.filter((i) => i.severity === 'error'),
  })
  if (!existsSync(file)) {
    issues.push({
      severity: 'error',
      file,
      line: 0,
      column: 0,
      path: '(document)',
      message: 'release file not found',
      expected: 'a release YAML file',
    })
    return out()
  }
  const parsed = parseYaml(file, readFileSync(file, 'utf8'))
  issues.push(...parsed.issues)
  const src = parsed.source
  if (!src) return out()
  let fields: any
  let base: (string | number)[] = []
  if (Array.isArray(src.data)) {
    const entries = src.data.map((e: any, i: number) => ({ i, f: fixtureFields(e) })).filter((e) => e.f?.name)
    const chosen = options.name
      ? entries.find((e) => e.f.name === options.name)
      : (entries.find((e) => e.f.state !== 'unavailable') ?? entries[0])
    if (!chosen) {
      issues.push(
        src.issue(
          [],
          options.name ? `no release named "${options.name}" in this fixture` : 'no release in this fixture',
          {
            expected: `one of ${entries.map((e) => JSON.stringify(e.f.name)).join(', ') || 'a release entry'}`,
          },
        ),
      )
      return out()
    }
    fields = chosen.f
    base = [chosen.i, 'fields']
  } else if (src.data && typeof src.data === 'object') {
    fields = src.data
  } else {
    issues.push(src.issue([], 'a release file must be a map or a nailgun fixture list', { found: typeof src.data }))
    return out()
  }

  for (const key of ['name', 'version']) {
    if (typeof fields[key] !== 'string' && typeof fields[key] !== 'number') {
      issues.push(src.issue(base, `release has no "${key}"`, { expected: `a string field "${key}"` }))
    }
  }
  const settings = fields.attributes_metadata?.editable ?? {}
  const components: Component[] = (fields.components_metadata ?? []).map((c: Component) => ({
    ...c,
    source: 'release',
  }))
  components.forEach((c, i) => {
    if (typeof c.name !== 'string' || !new RegExp(COMPONENT_NAME_PATTERN).test(c.name)) {
      issues.push(
        src.issue([...base, 'components_metadata', i, 'name'], 'bad component name', {
          expected: `a name matching ${COMPONENT_NAME_PATTERN}`,
          found: JSON.stringify(c.name),
        }),
      )
    }
  })
  try {
    componentRegistry(components)
  } catch (e) {
    if (e instanceof ComponentDefinitionError) issues.push(src.issue([...base, 'components_metadata'], e.message))
    else throw e
  }
  issues.push(...expressionIssues(src))
  for (const [group, body] of Object.entries(settings)) {
    if (body && typeof body === 'object') {
      issues.push(
        ...settingIssues(src, body as Record<string, any>, [...base, 'attributes_metadata', 'editable', group]),
      )
    }
  }

  // Core graph: inline (xenstack shape) or a separate file.
  let taskSource: YamlSource | undefined
  let taskData: unknown[] = []
  let taskBase: (string | number)[] = []
  if (options.tasksFile) {
    const t = parseYaml(options.tasksFile, readFileSync(options.tasksFile, 'utf8'))
    issues.push(...t.issues)
    taskSource = t.source
    taskData = Array.isArray(t.source?.data) ? (t.source!.data as unknown[]) : []
  } else if (Array.isArray(fields.deployment_tasks)) {
    taskSource = src
    taskData = fields.deployment_tasks
    taskBase = [...base, 'deployment_tasks']
  }
  // LocatedTask paths are relative to the task list; wrap the source so positions resolve inside the file.
  const located: LocatedTask[] = taskData.map((task, index) => ({
    task: task as DeploymentTask,
    owner: 'release',
    source: taskSource && taskBase.length ? prefixedSource(taskSource, taskBase) : taskSource,
    index,
  }))
  issues.push(
    ...checkTaskGraph(located, []).filter((i) => i.severity === 'error' || !/will run on no node/.test(i.message)),
  )
  const tasks = located.map((t) => t.task)
  const release: Release = {
    name: String(fields.name ?? ''),
    version: String(fields.version ?? ''),
    operatingSystem: String(fields.operating_system ?? ''),
    description: String(fields.description ?? ''),
    state: String(fields.state ?? 'available'),
    settings,
    components,
    requiredComponentTypes: fields.required_component_types ?? [],
    roles: fields.roles_metadata ?? {},
    networks: fields.networks_metadata ?? {},
    nicAttributes: fields.nic_attributes ?? {},
    bondAttributes: fields.bond_attributes ?? {},
    nodeAttributes: fields.node_attributes ?? {},
    wizard: fields.wizard_metadata ?? {},
    tasks: located,
    stages: orderStages(tasks),
    groups: tasks.filter((t) => t.type === 'group').map((t) => t.id),
    file,
  }
  return out(release)
}

/** A view of a source whose paths start below `prefix` (for lists nested in a bigger document). */
function prefixedSource(src: YamlSource, prefix: (string | number)[]): YamlSource {
  const view = Object.create(src) as YamlSource
  view.issue = (path, message, extra) => src.issue([...prefix, ...path], message, extra)
  view.locate = (path, key) => src.locate([...prefix, ...path], key)
  return view
}

/** The models restrictions are evaluated against for a new environment of this release (defaults). */
export function defaultModels(release: Release, overrides: Partial<Models> = {}): Models {
  // The wizard's default model: pane → field → its value (or its first choice).
  const wizard: Record<string, Record<string, unknown>> = {}
  for (const [pane, fields] of Object.entries(release.wizard)) {
    wizard[pane] = {}
    for (const [key, f] of Object.entries((fields ?? {}) as Record<string, any>)) {
      if (key === 'metadata' || !f || typeof f !== 'object') continue
      wizard[pane][key] = f.value ?? f.values?.[0]?.data ?? null
    }
  }
  return {
    settings: release.settings,
    cluster: { net_provider: 'neutron', net_segment_type: 'vlan', mode: 'ha_compact', status: 'new', name: '' },
    version: { feature_groups: [] },
    networking_parameters: { segmentation_type: 'vlan', net_l23_provider: 'ovs' },
    release: { name: release.name, version: release.version, operating_system: release.operatingSystem },
    // fuel-ui: a path without a model reads the default model — the wizard's fields there, the settings elsewhere.
    default: { ...release.settings, ...wizard },
    node_attributes: release.nodeAttributes,
    nic_attributes: release.nicAttributes,
    bond_attributes: release.bondAttributes,
    interface: { name: 'eth0', pxe: false },
    ...overrides,
  }
}

/** Where the releases shipped with xenstack live (packages/xenstack/releases). */
export function builtinReleaseDir(): string {
  // dist/src/releases/release.js → ../../../releases
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'releases')
}

let shipped: Release[] | undefined

/**
 * The releases shipped with xenstack, loaded and checked once per process (a broken shipped release is a bug:
 * it throws). Callers must not modify what they get.
 */
export function builtinReleases(): Release[] {
  shipped ??= loadShipped()
  return shipped
}

function loadShipped(): Release[] {
  const dir = builtinReleaseDir()
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => {
      const r = loadReleaseFile(join(dir, f))
      if (r.errors.length || !r.release) throw new ValidationError(`release ${f}`, r.issues)
      return r.release
    })
}

/** Finds a release by name or version (case-insensitive on the name). */
export function findRelease(releases: Release[], key: string): Release | undefined {
  const k = key.toLowerCase()
  return releases.find((r) => r.name.toLowerCase() === k || r.version === key)
}

/** A release as plain JSON (no source positions): what `release show --json`, the store and the API carry. */
export function releaseToJSON(r: Release): Record<string, unknown> {
  return {
    name: r.name,
    version: r.version,
    operatingSystem: r.operatingSystem,
    description: r.description,
    state: r.state,
    stages: r.stages,
    groups: r.groups,
    roles: r.roles,
    networks: r.networks,
    requiredComponentTypes: r.requiredComponentTypes,
    components: r.components.map(({ source: _source, ...c }) => c),
    settings: r.settings,
    nicAttributes: r.nicAttributes,
    bondAttributes: r.bondAttributes,
    nodeAttributes: r.nodeAttributes,
    tasks: r.tasks.map((t) => t.task),
  }
}

/** A Release back from its JSON form (tasks without positions). */
export function releaseFromJSON(j: Record<string, any>): Release {
  return {
    name: j.name,
    version: j.version,
    operatingSystem: j.operatingSystem ?? '',
    description: j.description ?? '',
    state: j.state ?? 'available',
    settings: j.settings ?? {},
    components: (j.components ?? []).map((c: Component) => ({ ...c, source: 'release' })),
    requiredComponentTypes: j.requiredComponentTypes ?? [],
    roles: j.roles ?? {},
    networks: j.networks ?? {},
    nicAttributes: j.nicAttributes ?? {},
    bondAttributes: j.bondAttributes ?? {},
    nodeAttributes: j.nodeAttributes ?? {},
    wizard: j.wizard ?? {},
    tasks: (j.tasks ?? []).map((task: DeploymentTask, index: number) => ({ task, owner: 'release', index })),
    stages: j.stages ?? [],
    groups: j.groups ?? [],
  }
}

/** Records the shipped releases in the state store (idempotent); returns their names. */
export function syncBuiltinReleases(store: {
  releases: {
    upsert(r: {
      name: string
      version: string
      operatingSystem: string
      source: string
      data: Record<string, any>
    }): void
  }
}): string[] {
  const releases = builtinReleases()
  for (const r of releases) {
    store.releases.upsert({
      name: r.name,
      version: r.version,
      operatingSystem: r.operatingSystem,
      source: 'builtin',
      data: releaseToJSON(r),
    })
  }
  return releases.map((r) => r.name)
}
