/**
 * Reads an environment from the state store into what the engine deploys: the release's core tasks, each
 * enabled plugin's deployment tasks (its `deployment_scripts/` synced to `/etc/fuel/plugins/<name>-<version>/`
 * on the node, the cwd of its shell tasks), the nodes with roles, and the models conditions read (settings with
 * passwords revealed — they go to tasks, never to logs or the engine's tables — and the cluster).
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { builtinReleases, findRelease } from '../releases/release.js'
import type { StateStore } from '../state/store.js'
import type { DeployableEnvironment } from './deployment.js'
import type { SourcedTask, TaskDefinition } from './graph.js'
import { nodeAccessFromRecords } from './node-access.js'
import type { NativeTask, PluginScripts } from './tasks.js'

export class EnvironmentNotDeployableError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'EnvironmentNotDeployableError'
  }
}

function asTask(entry: any): TaskDefinition {
  // Releases keep LocatedTask ({task, owner, index}); plugin data keeps plain tasks.
  return entry && typeof entry === 'object' && entry.task && typeof entry.task === 'object' ? entry.task : entry
}

export function loadDeployableEnvironment(
  state: StateStore,
  name: string,
  opts: { natives?: Map<string, NativeTask> } = {},
): DeployableEnvironment & { close(): Promise<void> } {
  const env = state.environments.get(name)
  if (!env) throw new EnvironmentNotDeployableError(`environment "${name}" does not exist`)
  // The release as recorded in the state store, else one shipped with xenstack.
  const stored = state.releases.get(env.release)
  const shipped = stored ? undefined : findRelease(builtinReleases(), env.release)
  if (!stored && !shipped)
    throw new EnvironmentNotDeployableError(
      `environment "${name}": release "${env.release}" is neither in the state store nor shipped with xenstack`,
    )
  const releaseTasks: unknown[] = stored ? ((stored.data.tasks ?? []) as unknown[]) : (shipped?.tasks ?? [])
  const where = stored ? `release ${stored.name} (${stored.source})` : `release ${shipped?.name} (shipped)`
  const tasks: SourcedTask[] = releaseTasks.map((t) => ({ task: asTask(t), source: 'release', location: where }))
  const scripts = new Map<string, PluginScripts>()
  for (const p of env.plugins.filter((x) => x.enabled)) {
    const installed = state.plugins.get(p.name, p.version)
    if (!installed)
      throw new EnvironmentNotDeployableError(
        `environment "${name}" enables plugin ${p.name}==${p.version}, which is not installed`,
      )
    for (const t of installed.data.deploymentTasks ?? [])
      tasks.push({ task: asTask(t), source: p.name, location: `plugin ${p.name}==${p.version} deployment_tasks.yaml` })
    const local = join(installed.dir, 'deployment_scripts')
    if (existsSync(local))
      scripts.set(p.name, { localDir: local, remoteDir: `/etc/fuel/plugins/${p.name}-${p.version}` })
  }
  const records = state.environments.nodes(name)
  if (records.length === 0) throw new EnvironmentNotDeployableError(`environment "${name}" has no nodes`)
  const access = nodeAccessFromRecords(records, { dataDir: state.dataDir })
  return {
    name,
    tasks,
    nodes: records.map((r) => ({ name: r.name, roles: r.roles, facts: r.data?.facts })),
    models: {
      settings: state.environments.settings(name, { reveal: true }),
      cluster: { ...state.environments.cluster(name), name, status: env.status, release: env.release },
    },
    scripts,
    access,
    natives: opts.natives,
    close: () => access.close(),
  }
}
