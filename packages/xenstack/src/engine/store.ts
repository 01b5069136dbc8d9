/**
 * The engine's persistent state, in xenstack's SQLite state store (WAL): deployments, their expanded plans,
 * per-task status and history (times, status, attempt, output tail, resource diffs), node statuses, the last
 * successful digest of every task on every node (redeploy) and learned durations (progress, priorities).
 *
 * The scheduler writes through `SqliteJournal`: transitions are buffered and written in one transaction by
 * `flush()`, which the scheduler calls before it starts any task — so nothing runs that the store does not know.
 */
import type * as Database from '../state/driver.js'
import { crashPoint } from '../state/crash-hook.js'
import type { Journal, Transition } from './scheduler.js'
import type { DeploymentStatus, ExecutionPlan, NodeStatus, PlanTask, TaskStatus } from './types.js'

/** Same shape as the state store's migrations (src/state/migrations.ts): portable SQL, one statement per entry. */
export interface Migration {
  id: string
  statements: string[]
}

/**
 * The engine's tables, in the state store's engine range (`0100_…`). Portable SQL (SQLite and PostgreSQL):
 * ids are made by the application, times are ISO-8601 UTC text, JSON documents are `*_json` text.
 */
export const ENGINE_MIGRATIONS: Migration[] = [
  {
    id: '0100_engine_deployments',
    statements: [
      `CREATE TABLE engine_deployments (
        id INTEGER PRIMARY KEY,
        environment TEXT NOT NULL,
        mode TEXT NOT NULL,
        force INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        stop_requested INTEGER NOT NULL,
        pid INTEGER,
        plan_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT
      )`,
      `CREATE INDEX engine_deployments_by_env ON engine_deployments (environment, id)`,
      `CREATE TABLE engine_tasks (
        deployment_id INTEGER NOT NULL REFERENCES engine_deployments (id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        key TEXT NOT NULL,
        node TEXT NOT NULL,
        task TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        reason TEXT,
        error_json TEXT,
        output_tail TEXT,
        changes_json TEXT,
        definition_json TEXT NOT NULL,
        PRIMARY KEY (deployment_id, idx)
      )`,
      `CREATE TABLE engine_task_history (
        deployment_id INTEGER NOT NULL REFERENCES engine_deployments (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        status TEXT NOT NULL,
        attempt INTEGER,
        at TEXT NOT NULL,
        reason TEXT,
        error_json TEXT,
        output_tail TEXT,
        changes_json TEXT,
        PRIMARY KEY (deployment_id, seq)
      )`,
      `CREATE TABLE engine_nodes (
        deployment_id INTEGER NOT NULL REFERENCES engine_deployments (id) ON DELETE CASCADE,
        node TEXT NOT NULL,
        pos INTEGER NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (deployment_id, node)
      )`,
      `CREATE TABLE engine_task_digests (
        environment TEXT NOT NULL,
        node TEXT NOT NULL,
        task TEXT NOT NULL,
        digest TEXT NOT NULL,
        deployment_id INTEGER NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (environment, node, task)
      )`,
      `CREATE TABLE engine_deployment_meta (
        deployment_id INTEGER NOT NULL REFERENCES engine_deployments (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value_json TEXT NOT NULL,
        PRIMARY KEY (deployment_id, key)
      )`,
      `CREATE TABLE engine_durations (
        task TEXT PRIMARY KEY,
        samples INTEGER NOT NULL,
        mean_ms REAL NOT NULL
      )`,
    ],
  },
]

ENGINE_MIGRATIONS.push({
  id: '0101_engine_history_started_at',
  // History rows are written when an attempt ends and carry its start; `running` lives on the task row.
  statements: [`ALTER TABLE engine_task_history ADD COLUMN started_at TEXT`],
})

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * Applies migrations not yet recorded in `schema_migrations` (same table and rules as the state store's
 * `migrate`, so either may run first), each in its own immediate transaction.
 */
export function applyMigrations(db: Database.Database, migrations: Migration[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)')
  const apply = db.transaction((m: Migration) => {
    if (db.prepare('SELECT 1 FROM schema_migrations WHERE id = ?').get(m.id)) return
    for (const st of m.statements) db.exec(st)
    db.prepare('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)').run(m.id, new Date().toISOString())
  })
  for (const m of [...migrations].sort((a, b) => a.id.localeCompare(b.id))) apply.immediate(m)
}

export interface DeploymentRow {
  id: number
  environment: string
  mode: string
  force: number
  status: DeploymentStatus
  reason: string | null
  stop_requested: number
  pid: number | null
  created_at: string
  finished_at: string | null
}

export interface TaskRow {
  idx: number
  key: string
  node: string
  task: string
  status: TaskStatus
  attempt: number
  started_at: string | null
  finished_at: string | null
  reason: string | null
  error_json: string | null
  output_tail: string | null
  changes_json: string | null
}

export interface HistoryRow {
  seq: number
  idx: number
  status: TaskStatus
  attempt: number | null
  at: string
  reason: string | null
}

export class EngineStore {
  constructor(readonly db: Database.Database) {
    applyMigrations(db, ENGINE_MIGRATIONS)
  }

  /** Records a new deployment with its full plan; returns its id. */
  createDeployment(environment: string, mode: string, force: boolean, plan: ExecutionPlan): number {
    const create = this.db.transaction(() => {
      const { next } = this.db
        .prepare<[], { next: number }>('SELECT COALESCE(MAX(id), 0) + 1 AS next FROM engine_deployments')
        .get() as { next: number }
      this.db
        .prepare(
          `INSERT INTO engine_deployments (id, environment, mode, force, status, reason, stop_requested, pid, plan_json,
             created_at) VALUES (?, ?, ?, ?, 'pending', NULL, 0, ?, ?, ?)`,
        )
        .run(
          next,
          environment,
          mode,
          force ? 1 : 0,
          process.pid,
          JSON.stringify({ nodes: plan.nodes, limiters: plan.limiters, faultTolerance: plan.faultTolerance }, ftJson),
          iso(Date.now()),
        )
      const ins = this.db.prepare(
        `INSERT INTO engine_tasks (deployment_id, idx, key, node, task, status, attempt, reason, definition_json)
         VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
      )
      plan.tasks.forEach((t, i) => ins.run(next, i, t.key, t.node, t.id, t.skipReason ?? null, JSON.stringify(t)))
      const insNode = this.db.prepare(
        `INSERT INTO engine_nodes (deployment_id, node, pos, status) VALUES (?, ?, ?, 'pending')`,
      )
      plan.nodes.forEach((n, pos) => insNode.run(next, n, pos))
      return next
    })
    return create.immediate()
  }

  deployment(id: number): DeploymentRow | undefined {
    return this.db
      .prepare<[number], DeploymentRow>(
        `SELECT id, environment, mode, force, status, reason, stop_requested, pid, created_at, finished_at
         FROM engine_deployments WHERE id = ?`,
      )
      .get(id)
  }

  latestDeployment(environment: string, modes = ['deploy', 'redeploy']): DeploymentRow | undefined {
    const row = this.db
      .prepare<unknown[], { id: number }>(
        `SELECT id FROM engine_deployments WHERE environment = ? AND mode IN (${modes.map(() => '?').join(',')})
         ORDER BY id DESC LIMIT 1`,
      )
      .get(environment, ...modes)
    return row ? this.deployment(row.id) : undefined
  }

  /** The plan as written by createDeployment. */
  loadPlan(id: number): ExecutionPlan {
    const d = this.db
      .prepare<[number], { plan_json: string }>('SELECT plan_json FROM engine_deployments WHERE id = ?')
      .get(id)
    if (!d) throw new Error(`deployment ${id} does not exist`)
    const meta = JSON.parse(d.plan_json, ftRevive) as Omit<ExecutionPlan, 'tasks'>
    const tasks = this.db
      .prepare<[number], { definition_json: string }>(
        'SELECT definition_json FROM engine_tasks WHERE deployment_id = ? ORDER BY idx',
      )
      .all(id)
      .map((r) => JSON.parse(r.definition_json) as PlanTask)
    return { ...meta, tasks }
  }

  tasks(id: number): TaskRow[] {
    return this.db
      .prepare<[number], TaskRow>(
        `SELECT idx, key, node, task, status, attempt, started_at, finished_at, reason, error_json, output_tail,
           changes_json FROM engine_tasks WHERE deployment_id = ? ORDER BY idx`,
      )
      .all(id)
  }

  history(id: number): HistoryRow[] {
    return this.db
      .prepare<[number], HistoryRow>(
        'SELECT seq, idx, status, attempt, at, reason FROM engine_task_history WHERE deployment_id = ? ORDER BY seq',
      )
      .all(id)
  }

  /** Appends history rows outside the journal (e.g. "interrupted" notes on resume). */
  appendHistory(id: number, rows: { idx: number; status: TaskStatus; attempt: number; reason: string }[]): void {
    const next = this.nextSeq(id)
    const ins = this.db.prepare(
      `INSERT INTO engine_task_history (deployment_id, seq, idx, status, attempt, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    const at = iso(Date.now())
    rows.forEach((r, k) => ins.run(id, next + k, r.idx, r.status, r.attempt, at, r.reason))
  }

  nextSeq(id: number): number {
    const r = this.db
      .prepare<[number], { next: number }>(
        'SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM engine_task_history WHERE deployment_id = ?',
      )
      .get(id)
    return r?.next ?? 1
  }

  nodes(id: number): { name: string; status: NodeStatus }[] {
    return this.db
      .prepare<[number], { name: string; status: NodeStatus }>(
        'SELECT node AS name, status FROM engine_nodes WHERE deployment_id = ? ORDER BY pos',
      )
      .all(id)
  }

  setStatus(id: number, status: DeploymentStatus, reason?: string): void {
    const finished = status === 'running' || status === 'pending' ? null : iso(Date.now())
    this.db
      .prepare('UPDATE engine_deployments SET status = ?, reason = ?, finished_at = ?, pid = ? WHERE id = ?')
      .run(status, reason ?? null, finished, status === 'running' ? process.pid : null, id)
  }

  requestStop(id: number): void {
    this.db.prepare('UPDATE engine_deployments SET stop_requested = 1 WHERE id = ?').run(id)
  }

  clearStop(id: number): void {
    this.db.prepare('UPDATE engine_deployments SET stop_requested = 0 WHERE id = ?').run(id)
  }

  stopRequested(id: number): boolean {
    const r = this.db
      .prepare<[number], { s: number }>('SELECT stop_requested AS s FROM engine_deployments WHERE id = ?')
      .get(id)
    return !!r?.s
  }

  /** Last successful digest per node/task of an environment (redeploy compares against it). */
  digests(environment: string): Map<string, string> {
    const rows = this.db
      .prepare<[string], { node: string; task: string; digest: string }>(
        'SELECT node, task, digest FROM engine_task_digests WHERE environment = ?',
      )
      .all(environment)
    return new Map(rows.map((r) => [`${r.node}/${r.task}`, r.digest]))
  }

  /** Per-deployment documents (e.g. the models it was planned with, for `changed()` on the next one). */
  setMeta(id: number, key: string, valueJson: string): void {
    this.db
      .prepare(
        `INSERT INTO engine_deployment_meta (deployment_id, key, value_json) VALUES (?, ?, ?)
         ON CONFLICT (deployment_id, key) DO UPDATE SET value_json = excluded.value_json`,
      )
      .run(id, key, valueJson)
  }

  getMeta(id: number, key: string): string | undefined {
    return this.db
      .prepare<[number, string], { value_json: string }>(
        'SELECT value_json FROM engine_deployment_meta WHERE deployment_id = ? AND key = ?',
      )
      .get(id, key)?.value_json
  }

  /**
   * Forgets an environment's deployments and redeploy digests (its tasks, history and meta go with them): called
   * when the environment is deleted, so a new environment of the same name starts from a first deploy.
   */
  forgetEnvironment(environment: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM engine_task_digests WHERE environment = ?').run(environment)
      this.db.prepare('DELETE FROM engine_deployments WHERE environment = ?').run(environment)
    })()
  }

  /** Mean observed durations per task id (ms). */
  durations(): Map<string, number> {
    const rows = this.db
      .prepare<[], { task: string; mean_ms: number }>('SELECT task, mean_ms FROM engine_durations')
      .all()
    return new Map(rows.map((r) => [r.task, r.mean_ms]))
  }

  journal(deploymentId: number, environment: string, plan: ExecutionPlan): SqliteJournal {
    return new SqliteJournal(this.db, deploymentId, environment, plan, this.nextSeq(deploymentId))
  }
}

// Infinity does not survive JSON: tolerance is written as null for "no limit".
function ftJson(_k: string, v: unknown): unknown {
  return v === Infinity ? null : v
}
function ftRevive(k: string, v: unknown): unknown {
  return k === 'tolerance' && v === null ? Infinity : v
}

/** Buffers transitions; `flush()` writes them in one transaction (the scheduler flushes before acting). */
export class SqliteJournal implements Journal {
  private buffer: Transition[] = []
  private readonly updTask: Database.Statement
  private readonly updStart: Database.Statement
  private readonly insHist: Database.Statement
  private readonly updNode: Database.Statement
  private readonly upDigest: Database.Statement
  private readonly upDuration: Database.Statement
  private readonly startedAt = new Map<number, number>()
  private readonly durations = new Map<string, { n: number; sum: number }>()
  private readonly write: (batch: Transition[]) => void

  constructor(
    readonly db: Database.Database,
    readonly deploymentId: number,
    readonly environment: string,
    readonly plan: ExecutionPlan,
    private seq: number,
  ) {
    this.updTask = db.prepare(
      `UPDATE engine_tasks SET status = ?, attempt = COALESCE(?, attempt), finished_at = ?, reason = ?, error_json = ?,
         output_tail = ?, changes_json = ? WHERE deployment_id = ? AND idx = ?`,
    )
    this.updStart = db.prepare(
      `UPDATE engine_tasks SET status = 'running', attempt = ?, started_at = ?, finished_at = NULL, error_json = NULL
       WHERE deployment_id = ? AND idx = ?`,
    )
    this.insHist = db.prepare(
      `INSERT INTO engine_task_history (deployment_id, seq, idx, status, attempt, started_at, at, reason, error_json,
         output_tail, changes_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    this.updNode = db.prepare('UPDATE engine_nodes SET status = ? WHERE deployment_id = ? AND node = ?')
    this.upDigest = db.prepare(
      `INSERT INTO engine_task_digests (environment, node, task, digest, deployment_id, at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (environment, node, task) DO UPDATE SET digest = excluded.digest,
         deployment_id = excluded.deployment_id, at = excluded.at`,
    )
    this.upDuration = db.prepare(
      `INSERT INTO engine_durations (task, samples, mean_ms) VALUES (?, 1, ?)
       ON CONFLICT (task) DO UPDATE SET samples = MIN(engine_durations.samples + 1, 20),
         mean_ms = engine_durations.mean_ms + (excluded.mean_ms - engine_durations.mean_ms)
           / MIN(engine_durations.samples + 1, 20)`,
    )
    this.write = db.transaction((batch: Transition[]) => {
      for (const t of batch) this.writeOne(t)
      crashPoint('journal-write') // test-only (state/crash-hook.ts): killed with the batch written, uncommitted
    })
  }

  record(t: Transition): void {
    this.buffer.push(t)
  }

  /** Transitions recorded and not yet written (the bench counts commits with it). */
  get pending(): number {
    return this.buffer.length
  }

  flush(): void {
    if (this.buffer.length === 0) return
    const batch = this.buffer
    this.buffer = []
    this.write(batch)
    crashPoint('journal-commit') // test-only: killed after the commit, before the scheduler acts on it
  }

  /**
   * End of a run: the digests of every task that succeeded in this deployment (redeploy compares against them;
   * written once here rather than per task — a crashed run's tasks get theirs when it is resumed) and the learned
   * durations (mean per task id, blended into the stored mean).
   */
  finish(): void {
    this.flush()
    const succeeded = this.db
      .prepare<[number], { idx: number; finished_at: string }>(
        `SELECT idx, finished_at FROM engine_tasks WHERE deployment_id = ? AND status = 'succeeded'`,
      )
      .all(this.deploymentId)
    const batch = [...this.durations]
    this.durations.clear()
    this.db.transaction(() => {
      for (const r of succeeded) {
        const task = this.plan.tasks[r.idx]
        if (task?.digest)
          this.upDigest.run(this.environment, task.node, task.id, task.digest, this.deploymentId, r.finished_at)
      }
      for (const [task, d] of batch) this.upDuration.run(task, d.sum / d.n)
    })()
  }

  private writeOne(t: Transition): void {
    const id = this.deploymentId
    const at = iso(t.at)
    if (t.kind === 'node') {
      this.updNode.run(t.status, id, t.node)
      return
    }
    if (t.status === 'running') {
      this.startedAt.set(t.index, t.at)
      this.updStart.run(t.attempt ?? 1, at, id, t.index)
      return
    }
    const o = t.outcome
    const error = o?.error ? JSON.stringify(o.error) : null
    const tail = o?.outputTail?.length ? o.outputTail.join('\n') : (o?.error?.tail?.join('\n') ?? null)
    const changes = o?.changes?.length ? JSON.stringify(o.changes) : null
    const start = this.startedAt.get(t.index)
    this.updTask.run(t.status, t.attempt ?? null, at, t.reason ?? null, error, tail, changes, id, t.index)
    this.insHist.run(
      id,
      this.seq++,
      t.index,
      t.status,
      t.attempt ?? null,
      start !== undefined && t.attempt !== undefined ? iso(start) : null,
      at,
      t.reason ?? null,
      error,
      tail,
      changes,
    )
    if (t.status === 'succeeded' && start !== undefined) {
      // Durations are statistics: aggregated here, written once by finish().
      const task = this.plan.tasks[t.index]
      const d = this.durations.get(task.id) ?? { n: 0, sum: 0 }
      d.n++
      d.sum += Math.max(0, t.at - start)
      this.durations.set(task.id, d)
    }
  }
}
