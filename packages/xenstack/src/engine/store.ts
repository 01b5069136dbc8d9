/**
 * The engine's persistent state, in xenstack's SQLite state store (WAL): deployments, their expanded plans,
 * per-task status and history (times, status, attempt, output tail, resource diffs), node statuses, the last
 * successful digest of every task on every node (redeploy) and learned durations (progress, priorities).
 *
 * The scheduler writes through `SqliteJournal`: transitions are buffered and written in one transaction by
 * `flush()`, which the scheduler calls before it starts any task — so nothing runs that the store does not know.
 */
import type Database from 'better-sqlite3'
import type { Journal, Transition } from './scheduler.js'
import type { DeploymentStatus, ExecutionPlan, NodeStatus, PlanTask, TaskStatus } from './types.js'

export interface Migration {
  id: string
  sql: string
}

/** The engine's tables; applied through the state store's migration list (ids are global and never reused). */
export const ENGINE_MIGRATIONS: Migration[] = [
  {
    id: 'engine-001-deployments',
    sql: `
CREATE TABLE engine_deployments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  environment TEXT NOT NULL,
  mode TEXT NOT NULL,                -- deploy | redeploy | dry-run
  force INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL,              -- pending | running | ready | error | stopped | partially_deployed
  reason TEXT,
  stop_requested INTEGER NOT NULL DEFAULT 0,
  pid INTEGER,                       -- the process running it (a dead pid means crashed: resume)
  plan TEXT NOT NULL,                -- JSON: nodes, limiters, fault-tolerance groups
  created_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX engine_deployments_env ON engine_deployments(environment, id);
CREATE TABLE engine_tasks (
  deployment_id INTEGER NOT NULL REFERENCES engine_deployments(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  key TEXT NOT NULL,
  node TEXT NOT NULL,
  task TEXT NOT NULL,
  status TEXT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER,
  finished_at INTEGER,
  reason TEXT,
  error TEXT,                        -- JSON TaskErrorInfo
  output_tail TEXT,
  changes TEXT,                      -- JSON ResourceChange[]
  definition TEXT NOT NULL,          -- JSON PlanTask
  PRIMARY KEY (deployment_id, idx)
) WITHOUT ROWID;
CREATE TABLE engine_task_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  deployment_id INTEGER NOT NULL REFERENCES engine_deployments(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  status TEXT NOT NULL,
  attempt INTEGER,
  at INTEGER NOT NULL,
  reason TEXT,
  error TEXT,
  output_tail TEXT,
  changes TEXT
);
CREATE INDEX engine_task_history_task ON engine_task_history(deployment_id, idx);
CREATE TABLE engine_nodes (
  deployment_id INTEGER NOT NULL REFERENCES engine_deployments(id) ON DELETE CASCADE,
  node TEXT NOT NULL,
  pos INTEGER NOT NULL,
  status TEXT NOT NULL,
  PRIMARY KEY (deployment_id, node)
) WITHOUT ROWID;
CREATE TABLE engine_task_digests (
  environment TEXT NOT NULL,
  node TEXT NOT NULL,
  task TEXT NOT NULL,
  digest TEXT NOT NULL,
  deployment_id INTEGER NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (environment, node, task)
) WITHOUT ROWID;
CREATE TABLE engine_durations (
  task TEXT PRIMARY KEY,
  samples INTEGER NOT NULL,
  mean_ms REAL NOT NULL
) WITHOUT ROWID;
`,
  },
]

/**
 * Applies migrations not yet applied, each in its own transaction, recording them in `schema_migrations`.
 * (Used until the state store's own migration runner is available; same table shape.)
 */
export function applyMigrations(db: Database.Database, migrations: Migration[]): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`)
  const has = db.prepare<[string], { id: string }>('SELECT id FROM schema_migrations WHERE id = ?')
  const mark = db.prepare('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)')
  for (const m of migrations) {
    if (has.get(m.id)) continue
    db.transaction(() => {
      db.exec(m.sql)
      mark.run(m.id, Date.now())
    })()
  }
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
  created_at: number
  finished_at: number | null
}

export interface TaskRow {
  idx: number
  key: string
  node: string
  task: string
  status: TaskStatus
  attempt: number
  started_at: number | null
  finished_at: number | null
  reason: string | null
  error: string | null
  output_tail: string | null
  changes: string | null
}

export class EngineStore {
  constructor(readonly db: Database.Database) {
    applyMigrations(db, ENGINE_MIGRATIONS)
  }

  /** Records a new deployment with its full plan; returns its id. */
  createDeployment(environment: string, mode: string, force: boolean, plan: ExecutionPlan): number {
    const now = Date.now()
    return this.db.transaction(() => {
      const { lastInsertRowid } = this.db
        .prepare(
          `INSERT INTO engine_deployments (environment, mode, force, status, plan, created_at, pid)
           VALUES (?, ?, ?, 'pending', ?, ?, ?)`,
        )
        .run(
          environment,
          mode,
          force ? 1 : 0,
          JSON.stringify({ nodes: plan.nodes, limiters: plan.limiters, faultTolerance: plan.faultTolerance }, ftJson),
          now,
          process.pid,
        )
      const id = Number(lastInsertRowid)
      const ins = this.db.prepare(
        `INSERT INTO engine_tasks (deployment_id, idx, key, node, task, status, reason, definition)
         VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)`,
      )
      plan.tasks.forEach((t, i) => ins.run(id, i, t.key, t.node, t.id, t.skipReason ?? null, JSON.stringify(t)))
      const insNode = this.db.prepare(
        `INSERT INTO engine_nodes (deployment_id, node, pos, status) VALUES (?, ?, ?, 'pending')`,
      )
      plan.nodes.forEach((n, pos) => insNode.run(id, n, pos))
      return id
    })()
  }

  deployment(id: number): DeploymentRow | undefined {
    return this.db.prepare<[number], DeploymentRow>('SELECT * FROM engine_deployments WHERE id = ?').get(id)
  }

  latestDeployment(environment: string, modes = ['deploy', 'redeploy']): DeploymentRow | undefined {
    return this.db
      .prepare<unknown[], DeploymentRow>(
        `SELECT * FROM engine_deployments WHERE environment = ? AND mode IN (${modes.map(() => '?').join(',')})
         ORDER BY id DESC LIMIT 1`,
      )
      .get(environment, ...modes)
  }

  /** The plan as written by createDeployment. */
  loadPlan(id: number): ExecutionPlan {
    const d = this.db.prepare<[number], { plan: string }>('SELECT plan FROM engine_deployments WHERE id = ?').get(id)
    if (!d) throw new Error(`deployment ${id} does not exist`)
    const meta = JSON.parse(d.plan, ftRevive) as Omit<ExecutionPlan, 'tasks'>
    const tasks = this.db
      .prepare<[number], { definition: string }>(
        'SELECT definition FROM engine_tasks WHERE deployment_id = ? ORDER BY idx',
      )
      .all(id)
      .map((r) => JSON.parse(r.definition) as PlanTask)
    return { ...meta, tasks }
  }

  tasks(id: number): TaskRow[] {
    return this.db
      .prepare<[number], TaskRow>(
        `SELECT idx, key, node, task, status, attempt, started_at, finished_at, reason, error, output_tail, changes
         FROM engine_tasks WHERE deployment_id = ? ORDER BY idx`,
      )
      .all(id)
  }

  history(
    id: number,
  ): { idx: number; status: TaskStatus; attempt: number | null; at: number; reason: string | null }[] {
    return this.db
      .prepare<
        [number],
        { idx: number; status: TaskStatus; attempt: number | null; at: number; reason: string | null }
      >('SELECT idx, status, attempt, at, reason FROM engine_task_history WHERE deployment_id = ? ORDER BY id')
      .all(id)
  }

  nodes(id: number): { name: string; status: NodeStatus }[] {
    return this.db
      .prepare<[number], { name: string; status: NodeStatus }>(
        'SELECT node AS name, status FROM engine_nodes WHERE deployment_id = ? ORDER BY pos',
      )
      .all(id)
  }

  setStatus(id: number, status: DeploymentStatus, reason?: string): void {
    const finished = status === 'running' || status === 'pending' ? null : Date.now()
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

  /** Mean observed durations per task id (ms). */
  durations(): Map<string, number> {
    const rows = this.db
      .prepare<[], { task: string; mean_ms: number }>('SELECT task, mean_ms FROM engine_durations')
      .all()
    return new Map(rows.map((r) => [r.task, r.mean_ms]))
  }

  journal(deploymentId: number, environment: string, plan: ExecutionPlan): SqliteJournal {
    return new SqliteJournal(this.db, deploymentId, environment, plan)
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
  ) {
    this.updTask = db.prepare(
      `UPDATE engine_tasks SET status = ?, attempt = COALESCE(?, attempt), finished_at = ?, reason = ?, error = ?,
         output_tail = ?, changes = ? WHERE deployment_id = ? AND idx = ?`,
    )
    this.updStart = db.prepare(
      `UPDATE engine_tasks SET status = 'running', attempt = ?, started_at = ?, finished_at = NULL, error = NULL
       WHERE deployment_id = ? AND idx = ?`,
    )
    this.insHist = db.prepare(
      `INSERT INTO engine_task_history (deployment_id, idx, status, attempt, at, reason, error, output_tail, changes)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    this.updNode = db.prepare('UPDATE engine_nodes SET status = ? WHERE deployment_id = ? AND node = ?')
    this.upDigest = db.prepare(
      `INSERT INTO engine_task_digests (environment, node, task, digest, deployment_id, at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (environment, node, task) DO UPDATE SET digest = excluded.digest,
         deployment_id = excluded.deployment_id, at = excluded.at`,
    )
    this.upDuration = db.prepare(
      `INSERT INTO engine_durations (task, samples, mean_ms) VALUES (?, 1, ?)
       ON CONFLICT (task) DO UPDATE SET samples = MIN(samples + 1, 20),
         mean_ms = mean_ms + (excluded.mean_ms - mean_ms) / MIN(samples + 1, 20)`,
    )
    this.write = db.transaction((batch: Transition[]) => {
      for (const t of batch) this.writeOne(t)
    })
  }

  record(t: Transition): void {
    this.buffer.push(t)
  }

  flush(): void {
    if (this.buffer.length === 0) return
    const batch = this.buffer
    this.buffer = []
    this.write(batch)
  }

  /** Writes the learned durations (mean per task id over this deployment, blended into the stored mean). */
  writeDurations(): void {
    const batch = [...this.durations]
    this.durations.clear()
    this.db.transaction(() => {
      for (const [task, d] of batch) this.upDuration.run(task, d.sum / d.n)
    })()
  }

  private writeOne(t: Transition): void {
    const id = this.deploymentId
    if (t.kind === 'node') {
      this.updNode.run(t.status, id, t.node)
      return
    }
    const o = t.outcome
    const error = o?.error ? JSON.stringify(o.error) : null
    const tail = o?.outputTail?.length ? o.outputTail.join('\n') : (o?.error?.tail?.join('\n') ?? null)
    const changes = o?.changes?.length ? JSON.stringify(o.changes) : null
    if (t.status === 'running') {
      this.startedAt.set(t.index, t.at)
      this.updStart.run(t.attempt ?? 1, t.at, id, t.index)
    } else {
      this.updTask.run(t.status, t.attempt ?? null, t.at, t.reason ?? null, error, tail, changes, id, t.index)
    }
    this.insHist.run(id, t.index, t.status, t.attempt ?? null, t.at, t.reason ?? null, error, tail, changes)
    if (t.status === 'succeeded') {
      const task = this.plan.tasks[t.index]
      if (task.digest) this.upDigest.run(this.environment, task.node, task.id, task.digest, id, t.at)
      const start = this.startedAt.get(t.index)
      if (start !== undefined) {
        // Durations are statistics: aggregated here, written with the deployment's last flush.
        const d = this.durations.get(task.id) ?? { n: 0, sum: 0 }
        d.n++
        d.sum += Math.max(0, t.at - start)
        this.durations.set(task.id, d)
      }
    }
  }
}
