/**
 * Reads an environment from the state store into what the engine deploys, through the plugin framework's
 * `deploymentInputs`: the release's core tasks, each enabled plugin's deployment tasks (its deployment scripts
 * synced to `/etc/fuel/plugins/<name>-<major>/` on the node first, the cwd of its shell tasks), the nodes with
 * roles and facts, and the models conditions read (settings with passwords revealed — they go to tasks, never to
 * logs or the engine's tables, which keep only their hashes). Node access comes from each node's record; native
 * tasks get `ctx.xapi`, a connection to the pool the node names in `data.pool` (state/pools.ts), one per pool,
 * reused by every task and logged out by `close()`.
 */
import { existsSync } from 'node:fs'
import { EnvironmentError, deploymentInputs } from '../plugins/environment.js'
import { PoolConnections } from '../state/pools.js'
import { StateError, type StateStore } from '../state/store.js'
import type { DeployableEnvironment } from './deployment.js'
import type { SourcedTask, TaskDefinition } from './graph.js'
import { nodeAccessFromRecords } from './node-access.js'
import type { NativeTask, PluginScripts } from './tasks.js'

export class EnvironmentNotDeployableError extends Error {
  constructor(
    message: string,
    readonly notFound = false,
  ) {
    super(message)
    this.name = 'EnvironmentNotDeployableError'
  }
}

export function loadDeployableEnvironment(
  state: StateStore,
  name: string,
  opts: { natives?: Map<string, NativeTask> } = {},
): DeployableEnvironment & { close(): Promise<void> } {
  let inputs: ReturnType<typeof deploymentInputs>
  try {
    inputs = deploymentInputs(state, name)
  } catch (e) {
    if (e instanceof StateError) throw new EnvironmentNotDeployableError(e.message, e.code === 'not_found')
    if (e instanceof EnvironmentError) throw new EnvironmentNotDeployableError(e.message)
    throw e
  }
  const tasks: SourcedTask[] = inputs.tasks.map((t) => ({
    task: t.task as TaskDefinition,
    source: t.source,
    location: t.location ?? (t.source === 'release' ? `release ${inputs.release.name}` : `plugin ${t.source}`),
  }))
  // A plugin without a scripts directory has nothing to sync (its shell tasks run in /).
  const scripts = new Map<string, PluginScripts>(
    [...inputs.scripts].filter(([, s]) => existsSync(s.localDir)) as [string, PluginScripts][],
  )
  const records = state.environments.nodes(name)
  if (records.length === 0) throw new EnvironmentNotDeployableError(`environment "${name}" has no nodes`)
  const poolOf = new Map<string, string>()
  for (const r of records) {
    const pool = r.data?.pool
    if (pool === undefined) continue
    if (typeof pool !== 'string' || !state.pools.get(pool)) {
      throw new EnvironmentNotDeployableError(
        `environment "${name}", node ${r.name}: data.pool names ${JSON.stringify(pool)}, which is not a pool in the state store (known: ${
          state.pools
            .list()
            .map((p) => p.name)
            .join(', ') || 'none'
        })`,
      )
    }
    poolOf.set(r.name, pool)
  }
  const access = nodeAccessFromRecords(records, { dataDir: state.dataDir })
  const pools = new PoolConnections(state)
  return {
    name,
    tasks,
    nodes: inputs.nodes,
    models: inputs.models,
    scripts,
    access,
    natives: opts.natives,
    // A node without a pool (a controller) gets no connection; integration/context.ts's xapiOf says so by name.
    xapi: (node) => {
      const pool = poolOf.get(node)
      return pool === undefined ? undefined : pools.get(pool)
    },
    nodeData: (node) => records.find((r) => r.name === node)?.data,
    close: async () => {
      await Promise.allSettled([access.close(), pools.close()])
    },
  }
}
