/**
 * The scheduler: runs an expanded per-node task graph.
 *
 * - Parallel across nodes, `perNodeConcurrency` tasks at a time per node (default 1), at most `maxBusyNodes`
 *   nodes busy (default 50, astute's `max_nodes_per_call`).
 * - Critical-path priority: a ready task's weight is the longest expected-duration path from it to the end of
 *   the graph; the idle node whose best ready task weighs most goes first. Ready tasks live in heaps (per node
 *   and across nodes), so a pick costs O(log n) — astute polled every node for every pick.
 * - Limiters (group strategies `one_by_one`/`parallel` + `amount`, per-task strategies).
 * - Failures: a failed task fails its node; the node's remaining tasks and every dependent become
 *   `dep_failed` (sync points accept failed predecessors). Fault-tolerance groups brake gracefully.
 * - `stop()` is graceful (running tasks finish, unfinished nodes become `stopped`); `cancel()` also aborts
 *   running tasks. Per-task timeouts and retries.
 * - Every transition goes to the journal, and the journal is flushed before any task starts: the state on disk
 *   is never behind what was acted on, so `resume` can trust it.
 */
import { MaxHeap } from './heap.js'
import {
  NOOP_TYPES,
  SYNC_NODE,
  type DeploymentStatus,
  type ExecutionPlan,
  type NodeStatus,
  type PlanTask,
  type TaskErrorInfo,
  type TaskOutcome,
  type TaskStatus,
} from './types.js'

export interface RunContext {
  signal: AbortSignal
  /** 1 for the first attempt. */
  attempt: number
}

export type TaskRunner = (task: PlanTask, ctx: RunContext) => Promise<TaskOutcome>

export type Transition =
  | {
      kind: 'task'
      index: number
      status: TaskStatus
      at: number
      attempt?: number
      outcome?: TaskOutcome
      reason?: string
    }
  | { kind: 'node'; node: string; status: NodeStatus; at: number }

/** Where transitions are written before they are acted on. `flush` must make them durable. */
export interface Journal {
  record(t: Transition): void
  flush(): void
}

export type SchedulerEvent =
  | { type: 'task'; key: string; node: string; task: string; status: TaskStatus; attempt?: number; reason?: string }
  | { type: 'progress'; node: string; nodeProgress: number; progress: number }
  | { type: 'brake'; reason: string }

export interface SchedulerOptions {
  maxBusyNodes?: number
  perNodeConcurrency?: number
  journal?: Journal
  /** Statuses from a previous run (resume): succeeded and skipped tasks are not run again. */
  initial?: TaskStatus[]
  onEvent?: (e: SchedulerEvent) => void
  /** Aborting it is `cancel()`. */
  signal?: AbortSignal
  /** Asked before tasks start (e.g. a stop flag another process sets in the store): true is `stop()`. */
  shouldStop?: () => boolean
}

export interface SchedulerResult {
  status: DeploymentStatus
  statuses: TaskStatus[]
  nodes: { name: string; status: NodeStatus }[]
  /** Set when a fault-tolerance group braked the deployment, or a dead end was found. */
  reason?: string
  errors: TaskErrorInfo[]
  failedNodes: string[]
}

const enum S {
  pending,
  running,
  succeeded,
  failed,
  dep_failed,
  skipped,
  cancelled,
}
const STATUS_NAMES: TaskStatus[] = ['pending', 'running', 'succeeded', 'failed', 'dep_failed', 'skipped', 'cancelled']
const STATUS_CODES = new Map(STATUS_NAMES.map((s, i) => [s, i as S]))

export class GraphCycleError extends Error {
  constructor(readonly cycle: string[]) {
    super(`the task graph has a cycle: ${cycle.join(' -> ')}`)
    this.name = 'GraphCycleError'
  }
}

/** Topological order of the plan (Kahn), or a GraphCycleError naming one cycle. */
export function topologicalOrder(plan: ExecutionPlan, succ = successorLists(plan)): Int32Array {
  const n = plan.tasks.length
  const indeg = new Int32Array(n)
  for (let i = 0; i < n; i++) for (const s of succ[i]) indeg[s]++
  const order = new Int32Array(n)
  let head = 0
  let tail = 0
  for (let i = 0; i < n; i++) if (indeg[i] === 0) order[tail++] = i
  while (head < tail) {
    const i = order[head++]
    for (const s of succ[i]) if (--indeg[s] === 0) order[tail++] = s
  }
  if (tail < n) throw new GraphCycleError(findCycle(plan, indeg))
  return order
}

function successorLists(plan: ExecutionPlan): number[][] {
  const succ: number[][] = plan.tasks.map(() => [])
  plan.tasks.forEach((t, i) => {
    for (const p of t.requires) succ[p].push(i)
    for (const g of t.requiresAny) for (const p of g) succ[p].push(i)
  })
  return succ
}

function findCycle(plan: ExecutionPlan, indeg: Int32Array): string[] {
  // Walk predecessors among the nodes left with indegree > 0 until one repeats.
  let i = indeg.findIndex((d) => d > 0)
  const seen = new Map<number, number>()
  const path: number[] = []
  while (!seen.has(i)) {
    seen.set(i, path.length)
    path.push(i)
    const t = plan.tasks[i]
    const preds = [...t.requires, ...t.requiresAny.flat()]
    i = preds.find((p) => indeg[p] > 0) as number
  }
  return path
    .slice(seen.get(i))
    .reverse()
    .concat([path[seen.get(i) as number]])
    .map((k) => plan.tasks[k].key)
}

/**
 * Critical-path weights: expected duration of the task plus the heaviest path after it. Noop tasks weigh 0.
 * Cross-node edges count like any other; the weight is time, not a count of tasks (astute counted tasks).
 */
export function criticalPathWeights(
  plan: ExecutionPlan,
  succ = successorLists(plan),
  order = topologicalOrder(plan, succ),
): Float64Array {
  const w = new Float64Array(plan.tasks.length)
  for (let k = order.length - 1; k >= 0; k--) {
    const i = order[k]
    const t = plan.tasks[i]
    let best = 0
    for (const s of succ[i]) if (w[s] > best) best = w[s]
    w[i] = best + (isNoop(t) ? 0 : t.expectedMs)
  }
  return w
}

export function isNoop(t: PlanTask): boolean {
  return t.node === SYNC_NODE || t.skipReason !== undefined || NOOP_TYPES.has(t.type)
}

/** An AbortController created only when a task looks at its signal (most never do; 40,000 cost real CPU). */
class LazyAbort {
  private ctl?: AbortController
  private reason?: unknown
  aborted = false

  get signal(): AbortSignal {
    if (!this.ctl) {
      this.ctl = new AbortController()
      if (this.aborted) this.ctl.abort(this.reason)
    }
    return this.ctl.signal
  }

  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    this.ctl?.abort(reason)
  }
}

/** A task attempt's context for its runner: the attempt number and a signal made on first use. */
class TaskAttempt extends LazyAbort implements RunContext {
  constructor(readonly attempt: number) {
    super()
  }
}

interface AnyGroup {
  target: number
  size: number
  failed: number
  satisfied: boolean
}

export class Scheduler {
  private readonly tasks: PlanTask[]
  private readonly n: number
  private readonly status: Uint8Array
  private readonly waiting: Int32Array
  private readonly weight: Float64Array
  private readonly nodeOf: Int32Array
  private readonly succ: number[][]
  private readonly anyOf: number[][]
  private readonly anyGroups: AnyGroup[] = []
  private readonly nodeNames: string[]
  private readonly nodeTasks: number[][]
  private readonly nodeRunning: Int32Array
  private readonly nodeRemaining: Int32Array
  private readonly nodeExpected: Float64Array
  private readonly nodeDone: Float64Array
  private readonly nodeFailed: Uint8Array
  private readonly nodeStarted: Uint8Array
  private readonly readyByNode: MaxHeap[]
  private readonly idleNodes = new MaxHeap()
  private readonly limiterCapacity: number[]
  private readonly limiterHolders: Map<number, number>[] // node -> member tasks not finished
  private readonly limiterRemaining: Map<number, number>[]
  private readonly limiterWaiting: number[][]
  private readonly ftTolerance: number[]
  private readonly ftOfNode: number[][]
  private readonly criticalNode: Uint8Array
  private readonly maxBusy: number
  private readonly perNode: number
  private readonly journal?: Journal
  private readonly onEvent?: (e: SchedulerEvent) => void
  private readonly shouldStop?: () => boolean
  private busyNodes = 0
  private runningTasks = 0
  private totalExpected = 0
  private doneExpected = 0
  private stopping: 'no' | 'stop' | 'brake' | 'cancel' = 'no'
  private reason?: string
  private readonly errors: TaskErrorInfo[] = []
  private readonly controllers = new Map<number, LazyAbort>()
  private pumpQueued = false
  private finish?: (r: SchedulerResult) => void
  private done = false

  constructor(
    private readonly plan: ExecutionPlan,
    private readonly runner: TaskRunner,
    opts: SchedulerOptions = {},
  ) {
    this.tasks = plan.tasks
    const n = (this.n = plan.tasks.length)
    this.maxBusy = opts.maxBusyNodes ?? 50
    this.perNode = opts.perNodeConcurrency ?? 1
    this.journal = opts.journal
    this.onEvent = opts.onEvent
    this.shouldStop = opts.shouldStop
    const allSucc = successorLists(plan)
    this.weight = criticalPathWeights(plan, allSucc, topologicalOrder(plan, allSucc))
    this.status = new Uint8Array(n)
    this.waiting = new Int32Array(n)
    this.nodeNames = plan.nodes
    const nodeIndex = new Map(plan.nodes.map((name, i) => [name, i]))
    const nn = plan.nodes.length
    this.nodeOf = new Int32Array(n)
    this.nodeTasks = plan.nodes.map(() => [])
    this.nodeRunning = new Int32Array(nn)
    this.nodeRemaining = new Int32Array(nn)
    this.nodeExpected = new Float64Array(nn)
    this.nodeDone = new Float64Array(nn)
    this.nodeFailed = new Uint8Array(nn)
    this.nodeStarted = new Uint8Array(nn)
    this.readyByNode = plan.nodes.map(() => new MaxHeap())
    this.succ = plan.tasks.map(() => [])
    this.anyOf = plan.tasks.map(() => [])
    this.limiterCapacity = plan.limiters.map((l) => Math.max(1, l.capacity))
    this.limiterHolders = plan.limiters.map(() => new Map())
    this.limiterRemaining = plan.limiters.map(() => new Map())
    this.limiterWaiting = plan.limiters.map(() => [])
    this.ftTolerance = plan.faultTolerance.map((g) => g.tolerance)
    this.ftOfNode = plan.nodes.map(() => [])
    this.criticalNode = new Uint8Array(nn).fill(1)
    plan.faultTolerance.forEach((g, gi) => {
      for (const name of g.nodes) {
        const ni = nodeIndex.get(name)
        if (ni === undefined) continue
        this.ftOfNode[ni].push(gi)
      }
    })
    // Critical nodes: in a zero-tolerance group, or in no group at all (astute).
    this.ftOfNode.forEach((gs, ni) => {
      this.criticalNode[ni] = gs.length === 0 || gs.some((g) => this.ftTolerance[g] === 0) ? 1 : 0
    })
    for (let i = 0; i < n; i++) {
      const t = plan.tasks[i]
      const ni = t.node === SYNC_NODE ? -1 : nodeIndex.get(t.node)
      if (ni === undefined) throw new Error(`plan task ${t.key}: node ${t.node} is not in the plan's node list`)
      this.nodeOf[i] = ni
      for (const p of t.requires) this.succ[p].push(i)
      for (const members of t.requiresAny) {
        const g = this.anyGroups.length
        this.anyGroups.push({ target: i, size: members.length, failed: 0, satisfied: members.length === 0 })
        for (const p of members) this.anyOf[p].push(g)
      }
      this.waiting[i] = t.requires.length + t.requiresAny.filter((m) => m.length > 0).length
      if (ni >= 0) {
        this.nodeTasks[ni].push(i)
        this.nodeRemaining[ni]++
        if (!isNoop(t)) {
          this.nodeExpected[ni] += t.expectedMs
          this.totalExpected += t.expectedMs
          for (const l of t.limiters) {
            const m = this.limiterRemaining[l]
            m.set(ni, (m.get(ni) ?? 0) + 1)
          }
        }
      }
    }
    if (opts.initial) {
      for (let i = 0; i < n; i++) {
        const s = STATUS_CODES.get(opts.initial[i]) ?? S.pending
        // Only success is kept: everything else runs again on resume.
        if (s === S.succeeded || s === S.skipped) this.status[i] = s
      }
    }
    if (opts.signal) {
      if (opts.signal.aborted) this.stopping = 'cancel'
      else opts.signal.addEventListener('abort', () => this.cancel(String(opts.signal?.reason ?? 'cancelled')))
    }
  }

  /** Runs the plan to the end (or to a graceful stop). */
  run(): Promise<SchedulerResult> {
    return new Promise((resolve) => {
      this.finish = resolve
      // Tasks already finished in a previous run release their dependents first (not journaled again).
      const work: number[] = []
      for (let i = 0; i < this.n; i++) {
        const s = this.status[i]
        if (s === S.succeeded || s === S.skipped) this.settleOk(i, s, false, work)
      }
      for (let i = 0; i < this.n; i++) if (this.status[i] === S.pending && this.waiting[i] === 0) work.push(i)
      this.drain(work)
      this.pump()
    })
  }

  /** Graceful stop: nothing new starts, running tasks finish, unfinished nodes become `stopped`. */
  stop(reason = 'stopped by request'): void {
    if (this.stopping !== 'no') return
    this.stopping = 'stop'
    this.reason = reason
    this.schedulePump()
  }

  /** Stop and abort running tasks. */
  cancel(reason = 'cancelled'): void {
    if (this.stopping === 'cancel') return
    this.stopping = 'cancel'
    this.reason = reason
    for (const c of this.controllers.values()) c.abort(new Error(reason))
    this.schedulePump()
  }

  private emit(e: SchedulerEvent): void {
    this.onEvent?.(e)
  }

  private record(i: number, status: S, extra: { attempt?: number; outcome?: TaskOutcome; reason?: string } = {}): void {
    const t = this.tasks[i]
    // One object shape for every transition (no spread: it copied `extra` property by property on every record).
    this.journal?.record({
      kind: 'task',
      index: i,
      status: STATUS_NAMES[status],
      at: Date.now(),
      attempt: extra.attempt,
      outcome: extra.outcome,
      reason: extra.reason,
    })
    if (this.onEvent)
      this.emit({
        type: 'task',
        key: t.key,
        node: t.node,
        task: t.id,
        status: STATUS_NAMES[status],
        attempt: extra.attempt,
        reason: extra.reason,
      })
  }

  /** A task is ready: noop tasks settle at once (pushed on `work`), others wait for their node. */
  private drain(work: number[]): void {
    while (work.length) {
      const i = work.pop() as number
      if (this.status[i] !== S.pending) continue
      const t = this.tasks[i]
      if (isNoop(t)) {
        const s = t.skipReason !== undefined || t.type === 'skipped' ? S.skipped : S.succeeded
        this.settleOk(i, s, true, work, t.skipReason)
      } else {
        const ni = this.nodeOf[i]
        const heap = this.readyByNode[ni]
        heap.push(i, this.weight[i])
        if (heap.peek() === i && this.nodeRunning[ni] < this.perNode) this.idleNodes.push(ni, this.weight[i])
      }
    }
  }

  private settleOk(i: number, s: S, journal: boolean, work: number[], reason?: string): void {
    this.status[i] = s
    if (journal) this.record(i, s, reason ? { reason } : {})
    this.taskFinished(i)
    for (const k of this.succ[i]) if (--this.waiting[k] === 0 && this.status[k] === S.pending) work.push(k)
    for (const g of this.anyOf[i]) {
      const ag = this.anyGroups[g]
      if (ag.satisfied) continue
      ag.satisfied = true
      if (--this.waiting[ag.target] === 0 && this.status[ag.target] === S.pending) work.push(ag.target)
    }
  }

  /** Bookkeeping common to every terminal status: node counters, limiters, progress. */
  private taskFinished(i: number): void {
    const ni = this.nodeOf[i]
    if (ni < 0) return
    this.nodeRemaining[ni]--
    const t = this.tasks[i]
    if (!isNoop(t)) {
      this.nodeDone[ni] += t.expectedMs
      this.doneExpected += t.expectedMs
      for (const l of t.limiters) {
        const rem = this.limiterRemaining[l]
        const left = (rem.get(ni) ?? 1) - 1
        rem.set(ni, left)
        if (left === 0 && this.limiterHolders[l].delete(ni)) this.releaseWaiting(l)
      }
      if (this.onEvent) {
        const ne = this.nodeExpected[ni]
        this.emit({
          type: 'progress',
          node: t.node,
          nodeProgress: ne > 0 ? Math.round((1000 * this.nodeDone[ni]) / ne) / 10 : 100,
          progress: this.totalExpected > 0 ? Math.round((1000 * this.doneExpected) / this.totalExpected) / 10 : 100,
        })
      }
    }
  }

  private releaseWaiting(l: number): void {
    const waiting = this.limiterWaiting[l]
    if (waiting.length === 0) return
    this.limiterWaiting[l] = []
    for (const i of waiting) {
      if (this.status[i] !== S.pending) continue
      const ni = this.nodeOf[i]
      this.readyByNode[ni].push(i, this.weight[i])
      if (this.nodeRunning[ni] < this.perNode) this.idleNodes.push(ni, this.readyByNode[ni].peekKey())
    }
  }

  /** Fails everything that depends on `i` (and, when `i` failed, the rest of its node). */
  private propagateFailure(i: number, work: number[]): void {
    const stack = [i]
    while (stack.length) {
      const f = stack.pop() as number
      const ft = this.tasks[f]
      const why = `${ft.key} ${STATUS_NAMES[this.status[f]]}`
      const markDepFailed = (k: number, reason: string) => {
        if (this.status[k] !== S.pending) return
        this.status[k] = S.dep_failed
        this.record(k, S.dep_failed, { reason })
        this.taskFinished(k)
        this.nodeHit(this.nodeOf[k], work)
        stack.push(k)
      }
      for (const k of this.succ[f]) {
        if (this.status[k] !== S.pending) continue
        if (this.tasks[k].syncPoint) {
          if (--this.waiting[k] === 0) work.push(k)
        } else markDepFailed(k, `requires ${why}`)
      }
      for (const g of this.anyOf[f]) {
        const ag = this.anyGroups[g]
        if (ag.satisfied) continue
        if (++ag.failed === ag.size)
          markDepFailed(ag.target, `every candidate of an 'any' dependency failed, last ${why}`)
      }
    }
  }

  /** A node got a failed or dep_failed task: fail the node once, its pending tasks, and count it against its groups. */
  private nodeHit(ni: number, work: number[]): void {
    if (ni < 0 || this.nodeFailed[ni]) return
    this.nodeFailed[ni] = 1
    for (const k of this.nodeTasks[ni]) {
      if (this.status[k] !== S.pending) continue
      this.status[k] = S.dep_failed
      this.record(k, S.dep_failed, { reason: `node ${this.nodeNames[ni]} failed` })
      this.taskFinished(k)
      this.propagateFailure(k, work)
    }
    for (const g of this.ftOfNode[ni]) {
      if (--this.ftTolerance[g] < 0 && this.stopping === 'no') {
        const grp = this.plan.faultTolerance[g]
        this.stopping = 'brake'
        this.reason = `fault tolerance of group ${grp.name} exceeded: more than ${grp.tolerance} of its ${grp.nodes.length} nodes failed (last: ${this.nodeNames[ni]})`
        this.emit({ type: 'brake', reason: this.reason })
      }
    }
  }

  private schedulePump(): void {
    if (this.pumpQueued) return
    this.pumpQueued = true
    setImmediate(() => {
      this.pumpQueued = false
      this.pump()
    })
  }

  /** Starts as many ready tasks as the caps allow, best first; flushes the journal before starting any. */
  private pump(): void {
    if (this.done) return
    const launch: number[] = []
    if (this.stopping === 'no' && this.idleNodes.size > 0 && this.shouldStop?.()) {
      this.stopping = 'stop'
      this.reason = 'stopped by request'
    }
    if (this.stopping === 'no') {
      while (this.idleNodes.size > 0 && this.busyNodes < this.maxBusy) {
        const key = this.idleNodes.peekKey()
        const ni = this.idleNodes.pop()
        const heap = this.readyByNode[ni]
        if (this.nodeRunning[ni] >= this.perNode || heap.size === 0 || heap.peekKey() !== key) continue
        const i = this.pickRunnable(ni)
        if (i < 0) continue
        this.status[i] = S.running
        this.record(i, S.running, { attempt: 1 })
        if (this.nodeRunning[ni]++ === 0) this.busyNodes++
        if (!this.nodeStarted[ni]) {
          this.nodeStarted[ni] = 1
          this.journal?.record({ kind: 'node', node: this.nodeNames[ni], status: 'deploying', at: Date.now() })
        }
        this.runningTasks++
        launch.push(i)
        if (this.nodeRunning[ni] < this.perNode && heap.size > 0) this.idleNodes.push(ni, heap.peekKey())
      }
    }
    this.journal?.flush()
    for (const i of launch) this.execute(i, 1)
    if (this.runningTasks === 0) this.complete()
  }

  /** The best ready task of the node that its limiters admit; blocked ones wait on their limiter. */
  private pickRunnable(ni: number): number {
    const heap = this.readyByNode[ni]
    while (heap.size > 0) {
      const i = heap.pop()
      if (this.status[i] !== S.pending) continue
      const blocked = this.tasks[i].limiters.find(
        (l) => !this.limiterHolders[l].has(ni) && this.limiterHolders[l].size >= this.limiterCapacity[l],
      )
      if (blocked !== undefined) {
        this.limiterWaiting[blocked].push(i)
        continue
      }
      for (const l of this.tasks[i].limiters) {
        const h = this.limiterHolders[l]
        if (!h.has(ni)) h.set(ni, 1)
      }
      return i
    }
    return -1
  }

  /**
   * Runs one attempt. Not an async function: the runner's promise is settled with one then() (an async wrapper
   * added its own promise and microtask hops to each of a deployment's tasks), and the task's context is the
   * attempt's LazyAbort itself (a prototype getter, not a fresh accessor object per task).
   */
  private execute(i: number, attempt: number): void {
    const t = this.tasks[i]
    const ctl = new TaskAttempt(attempt)
    this.controllers.set(i, ctl)
    let timer: NodeJS.Timeout | undefined
    const failed = (e: unknown): TaskOutcome => ({
      status: 'failed',
      error: { node: t.node, task: t.id, message: (e as Error)?.message ?? String(e) },
    })
    let run: Promise<TaskOutcome>
    try {
      // Promise.resolve: a runner that answers synchronously (not declared async) still settles the attempt.
      run = Promise.resolve(this.runner(t, ctl))
    } catch (e) {
      run = Promise.resolve(failed(e))
    }
    if (t.timeoutMs !== undefined && t.timeoutMs > 0) {
      const timeoutMs = t.timeoutMs
      const timedOut = new Promise<TaskOutcome>((resolve) => {
        timer = setTimeout(() => {
          ctl.abort(new Error(`timed out after ${timeoutMs / 1000} s`))
          resolve({
            status: 'failed',
            error: { node: t.node, task: t.id, message: `timed out after ${timeoutMs / 1000} s` },
          })
        }, timeoutMs)
      })
      run = Promise.race([run, timedOut])
    }
    const settle = (outcome: TaskOutcome) => {
      if (timer) clearTimeout(timer)
      this.controllers.delete(i)
      this.afterRun(i, attempt, outcome, ctl.aborted && this.stopping === 'cancel')
    }
    void run.then(settle, (e: unknown) => settle(failed(e)))
  }

  private afterRun(i: number, attempt: number, outcome: TaskOutcome, cancelled: boolean): void {
    const t = this.tasks[i]
    const ni = this.nodeOf[i]
    if (outcome.status === 'failed' && !cancelled && attempt <= t.retries && this.stopping !== 'cancel') {
      // Another attempt: the node stays busy; the failed attempt is history.
      this.record(i, S.failed, { attempt, outcome, reason: `attempt ${attempt} of ${t.retries + 1} failed` })
      this.record(i, S.running, { attempt: attempt + 1 })
      setTimeout(() => {
        this.journal?.flush()
        this.execute(i, attempt + 1)
      }, t.retryIntervalMs)
      return
    }
    this.runningTasks--
    if (--this.nodeRunning[ni] === 0) this.busyNodes--
    const work: number[] = []
    if (cancelled) {
      this.status[i] = S.cancelled
      this.record(i, S.cancelled, { attempt, outcome, reason: this.reason })
    } else if (outcome.status === 'succeeded') {
      this.status[i] = S.succeeded
      this.record(i, S.succeeded, { attempt, outcome })
      this.settleAfter(i, work)
    } else {
      this.status[i] = S.failed
      const error = outcome.error ?? { node: t.node, task: t.id, message: 'failed' }
      this.errors.push(error)
      this.record(i, S.failed, { attempt, outcome: { ...outcome, error } })
      this.taskFinished(i)
      this.nodeHit(ni, work)
      this.propagateFailure(i, work)
    }
    this.drain(work)
    const heap = this.readyByNode[ni]
    if (heap.size > 0 && this.nodeRunning[ni] < this.perNode) this.idleNodes.push(ni, heap.peekKey())
    this.schedulePump()
  }

  private settleAfter(i: number, work: number[]): void {
    this.taskFinished(i)
    for (const k of this.succ[i]) if (--this.waiting[k] === 0 && this.status[k] === S.pending) work.push(k)
    for (const g of this.anyOf[i]) {
      const ag = this.anyGroups[g]
      if (ag.satisfied) continue
      ag.satisfied = true
      if (--this.waiting[ag.target] === 0 && this.status[ag.target] === S.pending) work.push(ag.target)
    }
  }

  private complete(): void {
    if (this.done) return
    const unfinished: number[] = []
    for (let i = 0; i < this.n; i++) if (this.status[i] === S.pending) unfinished.push(i)
    if (unfinished.length > 0 && this.stopping === 'no') {
      // Nothing runs and nothing can start: a dead end (e.g. limiters held across a cross-node wait).
      this.stopping = 'brake'
      this.reason = `no task can start; waiting: ${unfinished
        .slice(0, 5)
        .map((i) => this.tasks[i].key)
        .join(', ')}${unfinished.length > 5 ? ` and ${unfinished.length - 5} more` : ''}`
    }
    this.done = true
    const nodes = this.nodeNames.map((name, ni) => {
      let status: NodeStatus = 'ready'
      if (this.nodeFailed[ni]) status = 'error'
      else if (this.nodeTasks[ni].some((i) => this.status[i] !== S.succeeded && this.status[i] !== S.skipped))
        status = 'stopped'
      return { name, status }
    })
    for (const nd of nodes) this.journal?.record({ kind: 'node', node: nd.name, status: nd.status, at: Date.now() })
    const failedNodes = nodes.filter((nd) => nd.status === 'error').map((nd) => nd.name)
    let status: DeploymentStatus
    const allDone = unfinished.length === 0 && !this.status.includes(S.cancelled)
    if ((this.stopping === 'stop' || this.stopping === 'cancel') && !allDone) {
      status = nodes.some((nd) => nd.status === 'ready') ? 'partially_deployed' : 'stopped'
    } else if (this.stopping === 'brake') status = 'error'
    else if (failedNodes.some((name) => this.criticalNode[this.nodeNames.indexOf(name)])) status = 'error'
    else if (unfinished.length === 0 && this.syncFailed()) status = 'error'
    else status = 'ready'
    this.journal?.flush()
    this.finish?.({
      status,
      statuses: Array.from(this.status, (s) => STATUS_NAMES[s]),
      nodes,
      reason: this.reason,
      errors: this.errors,
      failedNodes,
    })
  }

  private syncFailed(): boolean {
    for (let i = 0; i < this.n; i++) if (this.nodeOf[i] < 0 && this.status[i] === S.dep_failed) return true
    return false
  }
}

/** Runs a plan to the end; see Scheduler. */
export function runPlan(plan: ExecutionPlan, runner: TaskRunner, opts?: SchedulerOptions): Promise<SchedulerResult> {
  return new Scheduler(plan, runner, opts).run()
}
