/**
 * Tasks (§6): Async.* calls run as tasks with progress; the result is stored XML-RPC-serialised (`<value>…</value>`)
 * for every transport; failures set error_info (TASK_CANCELLED → status cancelled). task.create/cancel/destroy and
 * the owner's set_* messages. Garbage collection like XAPI: at most `maxTasks` tasks (oldest completed go first),
 * completed tasks older than 65 min and pending ones older than 24 h are destroyed.
 */
import { XapiError, toErrorDescription } from '../errors.js'
import { NULL_REF } from '../model.js'
import { nowXapi } from '../time.js'
import type { Simulator } from '../simulator.js'
import type { Session } from './session.js'

export interface TaskLimits {
  maxTasks: number
  completedTaskTimeoutMs: number
  pendingTaskTimeoutMs: number
}

interface TaskState {
  created: number
  finished?: number
  cancelRequested: boolean
  running: boolean
}

export class TaskManager {
  private readonly state = new Map<string, TaskState>()

  constructor(
    private readonly sim: Simulator,
    readonly limits: TaskLimits,
  ) {}

  /** Creates a pending task (owned by the session) and returns its ref. */
  create(label: string, description: string, session: Session | undefined, host: string): string {
    this.gc()
    const db = this.sim.db
    const ref = db.create('task', {
      name_label: label,
      name_description: description,
      created: nowXapi(),
      status: 'pending',
      allowed_operations: ['cancel'],
      resident_on: db.has('host', host) ? host : this.sim.master,
      progress: 0,
      subtask_of: NULL_REF,
    })
    this.state.set(ref, { created: Date.now(), cancelRequested: false, running: false })
    if (session && db.has('session', session.ref)) {
      const tasks = db.get(session.ref)!.tasks as string[]
      db.set(session.ref, 'tasks', [...tasks, ref])
    }
    return ref
  }

  /** Runs `fn` for a task: its resolved value (an XML-RPC `<value>` string) becomes the result. */
  async run(task: string, fn: () => Promise<string> | string): Promise<void> {
    const st = this.state.get(task)
    // Cancelled (or destroyed) before it started: the operation never runs.
    if (!this.sim.db.has('task', task) || this.sim.db.get(task)!.status !== 'pending') return
    if (st) st.running = true
    try {
      const xml = await fn()
      this.complete(task, { result: xml })
    } catch (e) {
      this.complete(task, { error: toErrorDescription(e) })
    } finally {
      if (st) st.running = false
    }
  }

  /**
   * Completes a task with a result (XML-RPC `<value>` string) or an error vector. Used by HTTP handlers for tasks
   * passed as `task_id`. A task already completed or destroyed is left alone.
   */
  complete(task: string, outcome: { result?: string; error?: string[] }): void {
    const db = this.sim.db
    if (!db.has('task', task)) return
    const rec = db.get(task)!
    if (rec.status !== 'pending' && rec.status !== 'cancelling') return
    const st = this.state.get(task)
    if (st) st.finished = Date.now()
    if (outcome.error) {
      const cancelled = outcome.error[0] === 'TASK_CANCELLED'
      db.update(task, {
        status: cancelled ? 'cancelled' : 'failure',
        error_info: outcome.error,
        finished: nowXapi(),
        allowed_operations: [],
        current_operations: {},
      })
    } else {
      db.update(task, {
        status: 'success',
        progress: 1,
        result: outcome.result ?? '<value></value>',
        finished: nowXapi(),
        allowed_operations: [],
        current_operations: {},
      })
    }
  }

  /** Marks a task as running (an HTTP transfer attached to it), so cancel only requests cancellation. */
  attach(task: string): void {
    const st = this.state.get(task)
    if (st) st.running = true
  }

  cancelRequested(task: string): boolean {
    return this.state.get(task)?.cancelRequested ?? false
  }

  cancel(task: string): void {
    const db = this.sim.db
    const rec = db.must('task', task)
    if (rec.status !== 'pending') throw new XapiError('OPERATION_NOT_ALLOWED', `task ${task} is ${String(rec.status)}`)
    const st = this.state.get(task) ?? { created: Date.now(), cancelRequested: false, running: false }
    this.state.set(task, st)
    st.cancelRequested = true
    if (st.running) db.update(task, { status: 'cancelling', allowed_operations: [] })
    else this.complete(task, { error: ['TASK_CANCELLED', task] })
  }

  destroy(task: string): void {
    this.sim.db.must('task', task)
    this.state.delete(task)
    this.sim.db.destroy(task)
  }

  /** XAPI's task GC: timeouts, then the oldest completed tasks beyond maxTasks. */
  gc(): void {
    const db = this.sim.db
    const now = Date.now()
    const { maxTasks, completedTaskTimeoutMs, pendingTaskTimeoutMs } = this.limits
    for (const [ref, st] of this.state) {
      if (!db.has('task', ref)) {
        this.state.delete(ref)
        continue
      }
      if (
        st.finished !== undefined ? now - st.finished > completedTaskTimeoutMs : now - st.created > pendingTaskTimeoutMs
      ) {
        this.destroy(ref)
      }
    }
    let excess = db.count('task') - maxTasks + 1
    if (excess <= 0) return
    const done = [...this.state.entries()]
      .filter(([, st]) => st.finished !== undefined)
      .sort((a, b) => a[1].finished! - b[1].finished!)
    for (const [ref] of done) {
      if (excess-- <= 0) break
      this.destroy(ref)
    }
  }

  install(): void {
    const d = this.sim.messages
    const db = this.sim.db
    d.implement('task.create', (ctx, a) => this.create(a[0] as string, a[1] as string, ctx.session, ctx.host))
    d.implement('task.cancel', (_ctx, a) => this.cancel(a[0] as string))
    d.implement('task.destroy', (_ctx, a) => this.destroy(a[0] as string))
    d.implement('task.set_status', (_ctx, a) => {
      db.must('task', a[0])
      const status = a[1] as string
      const done = status !== 'pending' && status !== 'cancelling'
      const st = this.state.get(a[0] as string)
      if (st && done) st.finished = Date.now()
      db.update(a[0] as string, done ? { status, finished: nowXapi(), allowed_operations: [] } : { status })
    })
    d.implement('task.set_progress', (_ctx, a) => {
      db.must('task', a[0])
      db.set(a[0] as string, 'progress', a[1])
    })
    d.implement('task.set_result', (_ctx, a) => {
      db.must('task', a[0])
      db.set(a[0] as string, 'result', a[1])
    })
    d.implement('task.set_error_info', (_ctx, a) => {
      db.must('task', a[0])
      db.set(a[0] as string, 'error_info', a[1])
    })
  }
}
