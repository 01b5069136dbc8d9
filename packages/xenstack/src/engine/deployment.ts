/**
 * From an environment to a deployment: builds the plan (release core graph + enabled plugins' tasks, expanded
 * on the environment's nodes, with learned durations and, on redeploy, the digests of the last successful runs),
 * then dry-runs it or records and runs it.
 */
import type { Models } from '@xenstack/restrictions'
import { buildExecutionPlan, sealSecrets, type GraphNode, type SourcedTask } from './graph.js'
import { dryRun, resumeDeployment, startDeployment, type DeploymentSummary, type DryRunPlan } from './engine.js'
import type { NodeAccess } from './ports.js'
import type { SchedulerEvent } from './scheduler.js'
import type { EngineStore } from './store.js'
import { createTaskRunner, type NativeTask, type PluginScripts, type TaskRunnerOptions } from './tasks.js'

/** Everything the engine needs to know about an environment. */
export interface DeployableEnvironment {
  name: string
  /** The release's core tasks first, then each enabled plugin's. */
  tasks: SourcedTask[]
  nodes: GraphNode[]
  /** Models for conditions and digests: settings (merged), cluster, … */
  models: Models
  /** Deployment scripts per plugin name. */
  scripts?: Map<string, PluginScripts>
  access: NodeAccess
  natives?: Map<string, NativeTask>
  /** The XenAPI connection of the node's pool (native tasks' `ctx.xapi`). */
  xapi?(node: string): unknown
  /** The node's record data (native tasks' `ctx.nodeData`). */
  nodeData?(node: string): Record<string, unknown> | undefined
}

export interface DeployOptions {
  dryRun?: boolean
  force?: boolean
  maxBusyNodes?: number
  perNodeConcurrency?: number
  onEvent?: (e: SchedulerEvent) => void
  signal?: AbortSignal
  onLog?(node: string, task: string, line: string): void
}

export type DeployResult =
  | { kind: 'dry-run'; plan: DryRunPlan; notes: string[] }
  | { kind: 'deployment'; summary: DeploymentSummary; notes: string[] }

/** The last deployment's models, kept so `changed()` conditions can compare. */
const MODELS_KEY = 'models'

export async function deployEnvironment(
  store: EngineStore,
  env: DeployableEnvironment,
  opts: DeployOptions = {},
): Promise<DeployResult> {
  const last = store.latestDeployment(env.name)
  const digests = store.digests(env.name)
  const redeploy = digests.size > 0
  const previousModels = last ? (loadModels(store, last.id) ?? undefined) : undefined
  const { plan, notes } = buildExecutionPlan({
    tasks: env.tasks,
    nodes: env.nodes,
    models: env.models,
    durations: store.durations(),
    previous: redeploy ? { digests, models: previousModels, sealed: true } : undefined,
    force: opts.force,
  })
  if (opts.dryRun) {
    return {
      kind: 'dry-run',
      plan: await dryRun(env.name, plan, runnerOptions(env)),
      notes,
    }
  }
  const runner = createTaskRunner(runnerOptions(env, opts.onLog))
  const summary = await startDeployment(store, env.name, plan, {
    runner,
    mode: redeploy ? 'redeploy' : 'deploy',
    force: opts.force,
    maxBusyNodes: opts.maxBusyNodes,
    perNodeConcurrency: opts.perNodeConcurrency,
    onEvent: opts.onEvent,
    signal: opts.signal,
    beforeRun: (id) => saveModels(store, id, env.models),
  })
  return { kind: 'deployment', summary, notes }
}

/** Resumes the environment's latest deployment (what did not succeed runs again). */
export async function resumeEnvironment(
  store: EngineStore,
  env: DeployableEnvironment,
  opts: DeployOptions = {},
): Promise<DeploymentSummary> {
  const last = store.latestDeployment(env.name)
  if (!last) throw new Error(`environment ${env.name} has no deployment to resume`)
  const runner = createTaskRunner(runnerOptions(env, opts.onLog))
  return resumeDeployment(store, last.id, {
    runner,
    maxBusyNodes: opts.maxBusyNodes,
    perNodeConcurrency: opts.perNodeConcurrency,
    onEvent: opts.onEvent,
    signal: opts.signal,
  })
}

/** What the environment's tasks run with — the same for a deployment, a resume and a dry run's planning. */
function runnerOptions(env: DeployableEnvironment, log?: DeployOptions['onLog']): TaskRunnerOptions {
  return {
    access: env.access,
    settings: (env.models.settings as Record<string, unknown>) ?? {},
    models: env.models,
    natives: env.natives,
    scripts: env.scripts,
    xapi: env.xapi,
    nodeData: env.nodeData,
    log,
  }
}

/** Saved with every password setting (`type: password`) replaced by its hash: no secret in the engine's tables. */
function saveModels(store: EngineStore, id: number, models: Models): void {
  store.setMeta(id, MODELS_KEY, JSON.stringify(sealSecrets(models)))
}

function loadModels(store: EngineStore, id: number): Models | null {
  const v = store.getMeta(id, MODELS_KEY)
  return v ? (JSON.parse(v) as Models) : null
}
