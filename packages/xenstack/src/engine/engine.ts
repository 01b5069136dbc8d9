/**
 * Deployments: start, resume, stop and status over the scheduler and the engine's store.
 *
 * A deployment's expanded plan is written before anything runs; every transition goes through the journal
 * before it is acted on. `resume` reloads the plan and the statuses, and runs again only what did not succeed
 * (a task that was running when the process died runs again; a succeeded one never does).
 * `stop` from another process sets a flag the running engine polls; the stop is graceful.
 */
import { Scheduler, isNoop, topologicalOrder, type SchedulerEvent, type TaskRunner } from './scheduler.js'
import type { EngineStore } from './store.js'
import type { NodeAccess, ResourceReport } from './ports.js'
import { nativeContext, toChanges, type NativeTask, type TaskRunnerOptions } from './tasks.js'
import {
  SYNC_NODE,
  type DeploymentStatus,
  type ExecutionPlan,
  type NodeStatus,
  type ResourceChange,
  type TaskErrorInfo,
  type TaskStatus,
} from './types.js'

export interface DeploymentSummary {
  environment: string
  deployment: number
  status: DeploymentStatus
  nodes: { name: string; status: NodeStatus }[]
  tasks: { total: number; succeeded: number; failed: number; skipped: number }
  /** Resources changed by the deployment's tasks. */
  changes: number
  reason?: string
  errors: TaskErrorInfo[]
}

export interface ExecuteOptions {
  runner: TaskRunner
  maxBusyNodes?: number
  perNodeConcurrency?: number
  onEvent?: (e: SchedulerEvent) => void
  signal?: AbortSignal
  /** How often the running engine looks for a stop request from another process (default 300 ms). */
  stopPollMs?: number
}

export interface StartOptions extends ExecuteOptions {
  mode?: 'deploy' | 'redeploy'
  force?: boolean
  /** Called with the new deployment's id once it is recorded, before any task runs. */
  beforeRun?(id: number): void
}

/** Records the plan, then runs it. */
export async function startDeployment(
  store: EngineStore,
  environment: string,
  plan: ExecutionPlan,
  opts: StartOptions,
): Promise<DeploymentSummary> {
  topologicalOrder(plan) // refuse a cyclic plan before recording it
  const id = store.createDeployment(environment, opts.mode ?? 'deploy', !!opts.force, plan)
  opts.beforeRun?.(id)
  return execute(store, id, plan, undefined, opts)
}

/** Runs again what did not succeed in deployment `id`. */
export async function resumeDeployment(
  store: EngineStore,
  id: number,
  opts: ExecuteOptions,
): Promise<DeploymentSummary> {
  const row = store.deployment(id)
  if (!row) throw new Error(`deployment ${id} does not exist`)
  if (row.status === 'ready') return summarize(store, id)
  const plan = store.loadPlan(id)
  const rows = store.tasks(id)
  const initial: TaskStatus[] = rows.map((r) => r.status)
  const interrupted = rows.filter((r) => r.status === 'running').map((r) => r.idx)
  if (interrupted.length) {
    const upd = store.db.prepare(`UPDATE engine_tasks SET status = 'pending' WHERE deployment_id = ? AND idx = ?`)
    store.db.transaction(() => {
      store.appendHistory(
        id,
        interrupted.map((i) => ({
          idx: i,
          status: 'pending' as const,
          attempt: rows[i].attempt,
          reason: 'interrupted: the engine stopped while it ran; it runs again',
        })),
      )
      for (const i of interrupted) upd.run(id, i)
    })()
  }
  return execute(store, id, plan, initial, opts)
}

async function execute(
  store: EngineStore,
  id: number,
  plan: ExecutionPlan,
  initial: TaskStatus[] | undefined,
  opts: ExecuteOptions,
): Promise<DeploymentSummary> {
  const row = store.deployment(id)
  if (!row) throw new Error(`deployment ${id} does not exist`)
  store.clearStop(id)
  store.setStatus(id, 'running')
  const journal = store.journal(id, row.environment, plan)
  const sched = new Scheduler(plan, opts.runner, {
    maxBusyNodes: opts.maxBusyNodes,
    perNodeConcurrency: opts.perNodeConcurrency,
    journal,
    initial,
    onEvent: opts.onEvent,
    signal: opts.signal,
    shouldStop: () => store.stopRequested(id),
  })
  const poll = setInterval(() => {
    if (store.stopRequested(id)) sched.stop('stopped by request')
  }, opts.stopPollMs ?? 300)
  try {
    const result = await sched.run()
    journal.finish()
    store.setStatus(id, result.status, result.reason)
  } finally {
    clearInterval(poll)
    journal.close() // after finish() a no-op; otherwise the fold timer stops and checkpoints are given back
  }
  return summarize(store, id)
}

const STRUCTURAL = new Set(['stage', 'group_start', 'group_end'])

/** The deployment's summary as the CLI prints it with `--json`. */
export function summarize(store: EngineStore, id: number): DeploymentSummary {
  const row = store.deployment(id)
  if (!row) throw new Error(`deployment ${id} does not exist`)
  const plan = store.loadPlan(id)
  const rows = store.tasks(id)
  const counts = { total: 0, succeeded: 0, failed: 0, skipped: 0 }
  let changes = 0
  const errors: TaskErrorInfo[] = []
  rows.forEach((r, i) => {
    const t = plan.tasks[i]
    if (t.node === SYNC_NODE || STRUCTURAL.has(t.type)) return
    counts.total++
    if (r.status === 'succeeded') counts.succeeded++
    else if (r.status === 'skipped') counts.skipped++
    else if (r.status === 'failed' || r.status === 'dep_failed') counts.failed++
    if (r.changes_json)
      changes += (JSON.parse(r.changes_json) as ResourceChange[]).filter((c) => c.result === 'changed').length
    if (r.status === 'failed' && r.error_json)
      errors.push({ ...(JSON.parse(r.error_json) as TaskErrorInfo), ...(r.attempt ? { attempts: r.attempt } : {}) })
  })
  return {
    environment: row.environment,
    deployment: id,
    status: row.status,
    nodes: store.nodes(id),
    tasks: counts,
    changes,
    reason: row.reason ?? undefined,
    errors,
  }
}

function alive(pid: number | null): boolean {
  if (!pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Graceful stop of the environment's current deployment. When its engine process is alive it is asked to stop
 * (running tasks finish); when that process is gone, the recorded state is closed as stopped.
 */
export function stopDeployment(store: EngineStore, id: number): 'requested' | 'stopped' | 'not-running' {
  const row = store.deployment(id)
  if (!row) throw new Error(`deployment ${id} does not exist`)
  if (row.status !== 'running' && row.status !== 'pending') return 'not-running'
  if (row.pid !== process.pid && alive(row.pid)) {
    store.requestStop(id)
    return 'requested'
  }
  const rows = store.tasks(id)
  const byNode = new Map<string, TaskStatus[]>()
  for (const r of rows) if (r.node !== SYNC_NODE) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r.status])
  const upd = store.db.prepare('UPDATE engine_nodes SET status = ? WHERE deployment_id = ? AND node = ?')
  let anyReady = false
  store.db.transaction(() => {
    for (const [node, sts] of byNode) {
      const ready = sts.every((s) => s === 'succeeded' || s === 'skipped')
      anyReady ||= ready
      upd.run(ready ? 'ready' : sts.includes('failed') ? 'error' : 'stopped', id, node)
    }
  })()
  store.setStatus(id, anyReady ? 'partially_deployed' : 'stopped', 'stopped by request (engine process not running)')
  return 'stopped'
}

/** Is the recorded engine process of a running deployment gone (crashed or killed)? */
export function isOrphaned(store: EngineStore, id: number): boolean {
  const row = store.deployment(id)
  return !!row && row.status === 'running' && row.pid !== process.pid && !alive(row.pid)
}

export interface DryRunTask {
  task: string
  type: string
  action: 'run' | 'skip'
  reason?: string
  /** What it would run (command, path…). */
  detail?: string
  /** For native tasks with resources: every change they would make. */
  changes?: ResourceChange[]
  error?: string
}

export interface DryRunPlan {
  environment: string
  nodes: { name: string; tasks: DryRunTask[] }[]
  tasks: { total: number; run: number; skipped: number }
  changes: number
}

/**
 * The full plan per node in execution order with skip reasons, and, for native tasks, node access's `plan` of
 * their resources. Nothing on any node changes and nothing is recorded.
 */
export async function dryRun(
  environment: string,
  plan: ExecutionPlan,
  opts: {
    access?: NodeAccess
    natives?: Map<string, NativeTask>
    settings?: Record<string, unknown>
    models?: Record<string, unknown>
    /** A node's pool connection and record data, as deployments give native tasks (their resources may read them). */
    xapi?(node: string): unknown
    nodeData?(node: string): Record<string, unknown> | undefined
  } = {},
): Promise<DryRunPlan> {
  const order = topologicalOrder(plan)
  const byNode = new Map<string, DryRunTask[]>(plan.nodes.map((n) => [n, []]))
  const counts = { total: 0, run: 0, skipped: 0 }
  let changes = 0
  for (const i of order) {
    const t = plan.tasks[i]
    if (t.node === SYNC_NODE || STRUCTURAL.has(t.type)) continue
    counts.total++
    const entry: DryRunTask = { task: t.id, type: t.type, action: isNoop(t) ? 'skip' : 'run' }
    if (t.skipReason) entry.reason = t.skipReason
    else if (t.type === 'skipped') entry.reason = 'task type is skipped'
    const p = t.parameters
    if (t.type === 'shell') entry.detail = String(p.cmd)
    else if (t.type === 'upload_file') entry.detail = `write ${String(p.path)}`
    else if (t.type === 'sync') entry.detail = `sync ${String(p.src)} -> ${String(p.dst)}`
    else if (t.type === 'puppet') entry.detail = `puppet apply ${String(p.puppet_manifest)}`
    else if (t.type === 'reboot') entry.detail = 'reboot and wait for a new boot id'
    if (entry.action === 'run') counts.run++
    else counts.skipped++
    if (entry.action === 'run' && t.type === 'native' && opts.access) {
      const name = typeof p.handler === 'string' ? p.handler : t.id
      const native = opts.natives?.get(name)
      if (!native) entry.error = `no native task named ${JSON.stringify(name)} is registered`
      else if (native.resources) {
        try {
          const exec = await opts.access.executor(t.node)
          const facts = (await opts.access.facts?.(t.node)) ?? {}
          const runnerOpts: TaskRunnerOptions = {
            access: opts.access,
            settings: opts.settings,
            models: opts.models,
            xapi: opts.xapi,
            nodeData: opts.nodeData,
            natives: opts.natives,
          }
          const ctx = nativeContext(exec, t, new AbortController().signal, runnerOpts, true, facts, () => {})
          const resources = await native.resources(ctx)
          const report: ResourceReport[] =
            resources.length && opts.access.resources ? await opts.access.resources.plan(exec, resources) : []
          entry.changes = toChanges(report)
          changes += entry.changes.filter((c) => c.result === 'changed').length
        } catch (e) {
          entry.error = (e as Error).message
        }
      }
    }
    byNode.get(t.node)?.push(entry)
  }
  return { environment, nodes: [...byNode].map(([name, tasks]) => ({ name, tasks })), tasks: counts, changes }
}
