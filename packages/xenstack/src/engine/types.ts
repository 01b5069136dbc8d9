/**
 * The deployment engine's data model: an execution plan is the task graph expanded per node (Fuel's
 * "tasks_graph"), with edges as indices so the scheduler can run 40,000 tasks without string lookups.
 */

/** The virtual node that holds sync points (stages), like astute's `virtual_sync_node`. */
export const SYNC_NODE = '_sync'

/** Task statuses, Fuel's vocabulary (`successful` is spelled `succeeded`) plus `cancelled`. */
export type TaskStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'dep_failed' | 'skipped' | 'cancelled'

export const TERMINAL_OK: ReadonlySet<TaskStatus> = new Set(['succeeded', 'skipped'])

/** Node statuses during and after a deployment (nailgun's vocabulary). */
export type NodeStatus = 'pending' | 'deploying' | 'ready' | 'error' | 'stopped'

/** Deployment outcome; `partially_deployed` is a stopped deployment where some node finished. */
export type DeploymentStatus = 'pending' | 'running' | 'ready' | 'error' | 'stopped' | 'partially_deployed'

/** Task types that never touch a node: they finish as soon as they are ready. */
export const NOOP_TYPES: ReadonlySet<string> = new Set(['stage', 'group', 'group_start', 'group_end', 'skipped'])

/** One task on one node. Indices in `requires`/`requiresAny` point into `ExecutionPlan.tasks`. */
export interface PlanTask {
  /** `<node>/<task id>`, unique in the plan. */
  key: string
  /** The task definition's id. */
  id: string
  /** Node name, or SYNC_NODE. */
  node: string
  /** shell, upload_file, copy_files, sync, reboot, native, puppet, stage, group_start, group_end, skipped… */
  type: string
  parameters: Record<string, unknown>
  /** Set when the task is kept in the graph but does not run (false condition, unchanged on redeploy…). */
  skipReason?: string
  /** Every one of these must finish (succeeded or skipped) first. */
  requires: number[]
  /** For each set, one member must succeed first (cross-depends with policy `any`). */
  requiresAny: number[][]
  /** A sync point also proceeds after failed predecessors (astute's rule for stages). */
  syncPoint: boolean
  /** Concurrency limiters this task counts against (group strategies and per-task strategies). */
  limiters: number[]
  /** Expected duration (ms), learned from history; drives critical-path priority and progress. */
  expectedMs: number
  timeoutMs?: number
  /** Extra attempts after a failure, and the pause between them. */
  retries: number
  retryIntervalMs: number
  /** Where the definition came from: `release` or the plugin's name. */
  source: string
  /** Digest of the task's inputs (definition, settings read, facts used); drives redeploy. */
  digest?: string
  reexecuteOnDeployChanges?: boolean
}

/**
 * At most `capacity` nodes hold the limiter at once. A node acquires it when it starts its first member task
 * and releases it when all its member tasks are finished: a group strategy `one_by_one` deploys the group's
 * nodes one after another, `parallel` with `amount: N` N at a time, a per-task strategy limits that task.
 */
export interface Limiter {
  name: string
  capacity: number
}

/** Fuel's fault-tolerance group: once more than `tolerance` of its nodes failed, the deployment brakes. */
export interface FaultToleranceGroup {
  name: string
  nodes: string[]
  /** Failed nodes allowed (Infinity when the group declares none). */
  tolerance: number
}

export interface ExecutionPlan {
  nodes: string[]
  tasks: PlanTask[]
  limiters: Limiter[]
  faultTolerance: FaultToleranceGroup[]
}

/** A resource change reported by a task (from node access's apply/plan). */
export interface ResourceChange {
  resource: string
  result: 'unchanged' | 'changed' | 'failed'
  diff?: string
}

/** What a task error carries so that nobody has to dig through logs: node, task, step, exit code, output tail. */
export interface TaskErrorInfo {
  node: string
  task: string
  step?: string
  exitCode?: number
  message: string
  /** Last lines of output (at most 40). */
  tail?: string[]
  /** Attempts the task made (its retries + 1 when all failed); set in deployment summaries. */
  attempts?: number
}

export interface TaskOutcome {
  status: 'succeeded' | 'failed'
  error?: TaskErrorInfo
  /** Last lines of output (at most 40). */
  outputTail?: string[]
  changes?: ResourceChange[]
}

export class TaskFailure extends Error {
  constructor(readonly info: TaskErrorInfo) {
    super(formatTaskError(info))
    this.name = 'TaskFailure'
  }
}

export function formatTaskError(e: TaskErrorInfo): string {
  const head = `task ${e.task} failed on node ${e.node}${e.attempts && e.attempts > 1 ? ` after ${e.attempts} attempts` : ''}${e.step ? ` at ${e.step}` : ''}${
    e.exitCode !== undefined ? ` (exit code ${e.exitCode})` : ''
  }: ${e.message}`
  return e.tail?.length ? `${head}\n--- last ${e.tail.length} lines ---\n${e.tail.join('\n')}` : head
}

/** Keeps the last `n` lines of a text (default 40). */
export function tailLines(text: string, n = 40): string[] {
  const lines = text.split('\n')
  if (lines.length && lines[lines.length - 1] === '') lines.pop()
  return lines.slice(-n)
}
