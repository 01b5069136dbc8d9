/**
 * The engine's persistent state, in xenstack's SQLite state store (WAL): deployments, their expanded plans,
 * per-task status and history (times, status, attempt, output tail, resource diffs), node statuses, the last
 * successful digest of every task on every node (redeploy) and learned durations (progress, priorities).
 *
 * The scheduler writes through `SqliteJournal`: transitions are buffered and `flush()`, which the scheduler calls
 * before it starts any task, commits them as one row of `engine_journal` — so nothing runs that the store does not
 * know. The journal is folded into the task, history and node tables within FOLD_INTERVAL_MS, at the end of a run,
 * and by every reader of those tables before it reads (see SqliteJournal for why, and what readers must do).
 */
import type * as Database from '../state/driver.js'
import { crashPoint } from '../state/crash-hook.js'
import type { Journal, Transition } from './scheduler.js'
import type {
  DeploymentStatus,
  ExecutionPlan,
  NodeStatus,
  PlanTask,
  ResourceChange,
  TaskErrorInfo,
  TaskStatus,
} from './types.js'

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

ENGINE_MIGRATIONS.push({
  id: '0102_engine_journal',
  // The append-only journal (SqliteJournal): one row per flush, folded into the tables above and then deleted.
  statements: [
    `CREATE TABLE engine_journal (
      deployment_id INTEGER NOT NULL REFERENCES engine_deployments (id) ON DELETE CASCADE,
      seq INTEGER NOT NULL,
      batch TEXT NOT NULL,
      PRIMARY KEY (deployment_id, seq)
    )`,
  ],
})

ENGINE_MIGRATIONS.push({
  id: '0103_engine_task_definitions',
  // Task definitions (written once, read by loadPlan) move out of engine_tasks, whose rows the journal's folds
  // rewrite: ~110-byte rows instead of ~400 put ~35 tasks on a page instead of ~10, so a fold dirties (and writes
  // to the WAL) a third of the pages, and each UPDATE copies a third of the bytes. The task's redeploy digest gets
  // its own column so finish() writes every digest in one INSERT … SELECT. Rows moved here from older deployments
  // have a NULL digest; EngineStore.journal() fills them in from the plan before such a deployment runs again.
  statements: [
    `CREATE TABLE engine_task_definitions (
      deployment_id INTEGER NOT NULL REFERENCES engine_deployments (id) ON DELETE CASCADE,
      idx INTEGER NOT NULL,
      digest TEXT,
      definition_json TEXT NOT NULL,
      PRIMARY KEY (deployment_id, idx)
    )`,
    `INSERT INTO engine_task_definitions (deployment_id, idx, definition_json)
      SELECT deployment_id, idx, definition_json FROM engine_tasks`,
    `ALTER TABLE engine_tasks DROP COLUMN definition_json`,
  ],
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
  private readonly folder: Folder

  constructor(readonly db: Database.Database) {
    applyMigrations(db, ENGINE_MIGRATIONS)
    this.folder = new Folder(db)
  }

  /**
   * Folds journalled transitions into engine_tasks, engine_task_history and engine_nodes — of deployment `id`, or
   * of every deployment when omitted — and returns how many it applied. tasks(), history() and nodes() call it;
   * raw SQL on those tables calls it first (a running engine's last ~250 ms, or a killed one's last batches, may
   * still be in the journal only).
   */
  fold(id?: number): number {
    return this.folder.fold(id)
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
        `INSERT INTO engine_tasks (deployment_id, idx, key, node, task, status, attempt, reason)
         VALUES (?, ?, ?, ?, ?, 'pending', 0, ?)`,
      )
      const insDef = this.db.prepare(
        'INSERT INTO engine_task_definitions (deployment_id, idx, digest, definition_json) VALUES (?, ?, ?, ?)',
      )
      plan.tasks.forEach((t, i) => {
        ins.run(next, i, t.key, t.node, t.id, t.skipReason ?? null)
        insDef.run(next, i, t.digest ?? null, JSON.stringify(t))
      })
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
        'SELECT definition_json FROM engine_task_definitions WHERE deployment_id = ? ORDER BY idx',
      )
      .all(id)
      .map((r) => JSON.parse(r.definition_json) as PlanTask)
    return { ...meta, tasks }
  }

  tasks(id: number): TaskRow[] {
    this.fold(id)
    return this.db
      .prepare<[number], TaskRow>(
        `SELECT idx, key, node, task, status, attempt, started_at, finished_at, reason, error_json, output_tail,
           changes_json FROM engine_tasks WHERE deployment_id = ? ORDER BY idx`,
      )
      .all(id)
  }

  history(id: number): HistoryRow[] {
    this.fold(id)
    return this.db
      .prepare<[number], HistoryRow>(
        'SELECT seq, idx, status, attempt, at, reason FROM engine_task_history WHERE deployment_id = ? ORDER BY seq',
      )
      .all(id)
  }

  /** Appends history rows outside the journal (e.g. "interrupted" notes on resume). */
  appendHistory(id: number, rows: { idx: number; status: TaskStatus; attempt: number; reason: string }[]): void {
    this.fold(id)
    const next = this.nextSeq(id)
    const ins = this.db.prepare(
      `INSERT INTO engine_task_history (deployment_id, seq, idx, status, attempt, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    const at = iso(Date.now())
    rows.forEach((r, k) => ins.run(id, next + k, r.idx, r.status, r.attempt, at, r.reason))
  }

  /** The next history seq of deployment `id` (its journal folded first: unfolded entries hold seqs too). */
  nextSeq(id: number): number {
    this.fold(id)
    const r = this.db
      .prepare<[number], { next: number }>(
        'SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM engine_task_history WHERE deployment_id = ?',
      )
      .get(id)
    return r?.next ?? 1
  }

  nodes(id: number): { name: string; status: NodeStatus }[] {
    this.fold(id)
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

  /** Digests of a deployment recorded before migration 0103 (NULL there), from its plan, once. */
  private backfillDigests(id: number, plan: ExecutionPlan): void {
    const missing = this.db
      .prepare<[number], { idx: number }>(
        'SELECT idx FROM engine_task_definitions WHERE deployment_id = ? AND digest IS NULL',
      )
      .all(id)
      .filter((r) => plan.tasks[r.idx]?.digest)
    if (missing.length === 0) return
    const upd = this.db.prepare('UPDATE engine_task_definitions SET digest = ? WHERE deployment_id = ? AND idx = ?')
    this.db.transaction(() => {
      for (const r of missing) upd.run(plan.tasks[r.idx].digest, id, r.idx)
    })()
  }

  /** `foldIntervalMs`: how long the journal may run ahead of the task tables (default FOLD_INTERVAL_MS). */
  journal(
    deploymentId: number,
    environment: string,
    plan: ExecutionPlan,
    opts: { foldIntervalMs?: number } = {},
  ): SqliteJournal {
    const seq = this.nextSeq(deploymentId) // folds what an earlier run of this deployment left in the journal
    this.backfillDigests(deploymentId, plan)
    const r = this.db
      .prepare<[number], { next: number }>(
        'SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM engine_journal WHERE deployment_id = ?',
      )
      .get(deploymentId)
    return new SqliteJournal(
      this.db,
      deploymentId,
      environment,
      plan,
      seq,
      r?.next ?? 1,
      this.folder,
      opts.foldIntervalMs ?? FOLD_INTERVAL_MS,
    )
  }
}

// Infinity does not survive JSON: tolerance is written as null for "no limit".
function ftJson(_k: string, v: unknown): unknown {
  return v === Infinity ? null : v
}
function ftRevive(k: string, v: unknown): unknown {
  return k === 'tolerance' && v === null ? Infinity : v
}

/**
 * One journalled transition as it is stored in `engine_journal.batch` (a JSON array of these, one row per flush).
 * Self-contained, so any process can fold it: an end carries its history `seq` and the start of its attempt.
 *   start: [idx, 'running', at, attempt]
 *   end:   [idx, status, at, attempt | null, seq, started | null, reason | null, error | null, tail | null,
 *           changes | null]
 *   node:  [-1, status, at, node]
 * Times are epoch milliseconds; the fold writes them as the tables' ISO-8601 text.
 */
type Entry =
  | [number, 'running', number, number]
  | [
      number,
      TaskStatus,
      number,
      number | null,
      number,
      number | null,
      string | null,
      TaskErrorInfo | null,
      string | null,
      ResourceChange[] | null,
    ]
  | [-1, NodeStatus, number, string]

/** Columns of engine_tasks a fold sets, by name; later transitions of the same task overwrite earlier ones. */
type TaskColumns = Partial<Record<(typeof TASK_COLUMNS)[number], string | number | null>>
const TASK_COLUMNS = [
  'status',
  'attempt',
  'started_at',
  'finished_at',
  'reason',
  'error_json',
  'output_tail',
  'changes_json',
] as const

/**
 * Folds journalled transitions into engine_tasks, engine_task_history and engine_nodes: every row of
 * engine_journal of the deployment, in order, in one immediate transaction that also deletes them — so a fold
 * applies each entry exactly once, whichever process runs it (the engine on its timer and at the end, a reader
 * before it reads, the next run after a kill), and concurrent folds queue on the writer lock.
 * A task touched several times between folds gets one UPDATE with the union of the columns its transitions set,
 * in order (start then end of an attempt: status, attempt, both times, reason, error, tail, changes).
 */
class Folder {
  private readonly pendingIds: Database.Statement<[], { deployment_id: number }>
  private readonly hasRows: Database.Statement<[number], { one: number }>
  private readonly rows: Database.Statement<[number], { seq: number; batch: string }>
  private readonly remove: Database.Statement<[number, number]>
  private readonly insHist: Database.Statement
  private readonly updNode: Database.Statement
  private readonly updates: Database.Statement[] = []
  private readonly updateColumns: (typeof TASK_COLUMNS)[number][][] = []
  private readonly foldOne: (id: number) => number

  constructor(private readonly db: Database.Database) {
    this.pendingIds = db.prepare('SELECT DISTINCT deployment_id FROM engine_journal')
    this.hasRows = db.prepare('SELECT 1 AS one FROM engine_journal WHERE deployment_id = ? LIMIT 1')
    this.rows = db.prepare('SELECT seq, batch FROM engine_journal WHERE deployment_id = ? ORDER BY seq')
    this.remove = db.prepare('DELETE FROM engine_journal WHERE deployment_id = ? AND seq <= ?')
    this.insHist = db.prepare(
      `INSERT INTO engine_task_history (deployment_id, seq, idx, status, attempt, started_at, at, reason, error_json,
         output_tail, changes_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    this.updNode = db.prepare('UPDATE engine_nodes SET status = ? WHERE deployment_id = ? AND node = ?')
    const tx = db.transaction((id: number) => this.apply(id))
    this.foldOne = (id) => tx.immediate(id)
  }

  /** Folds deployment `id` (every deployment with journal rows when omitted); returns the transitions applied. */
  fold(id?: number): number {
    if (id === undefined) {
      let n = 0
      for (const r of this.pendingIds.all()) n += this.fold(r.deployment_id)
      return n
    }
    // The common case for readers: nothing to fold, and no writer lock taken to find that out.
    if (!this.hasRows.get(id)) return 0
    return this.foldOne(id)
  }

  private apply(id: number): number {
    const rows = this.rows.all(id)
    if (rows.length === 0) return 0
    const tasks = new Map<number, TaskColumns>()
    const nodes = new Map<string, NodeStatus>()
    const iso = isoCache()
    let n = 0
    for (const row of rows) {
      for (const e of JSON.parse(row.batch) as Entry[]) {
        n++
        if (e[0] === -1) {
          nodes.set(e[3] as string, e[1] as NodeStatus)
          continue
        }
        let cols = tasks.get(e[0])
        if (!cols) tasks.set(e[0], (cols = {}))
        if (e[1] === 'running') {
          cols.status = 'running'
          cols.attempt = e[3]
          cols.started_at = iso(e[2])
          cols.finished_at = null
          cols.error_json = null
          continue
        }
        const [idx, status, at, attempt, seq, started, reason, error, tail, changes] = e as Extract<
          Entry,
          { length: 10 }
        >
        const errorJson = error ? JSON.stringify(error) : null
        const changesJson = changes ? JSON.stringify(changes) : null
        cols.status = status
        if (attempt !== null) cols.attempt = attempt
        cols.finished_at = iso(at)
        cols.reason = reason
        cols.error_json = errorJson
        cols.output_tail = tail
        cols.changes_json = changesJson
        this.insHist.run(
          id,
          seq,
          idx,
          status,
          attempt,
          started === null ? null : iso(started),
          iso(at),
          reason,
          errorJson,
          tail,
          changesJson,
        )
      }
    }
    for (const [idx, cols] of tasks) {
      // Every transition sets status, finished_at and error_json; attempt, started_at and the end's columns vary:
      // one prepared UPDATE per combination, looked up by a 3-bit mask (no per-task string building).
      const mask = ('attempt' in cols ? 1 : 0) | ('started_at' in cols ? 2 : 0) | ('reason' in cols ? 4 : 0)
      let upd = this.updates[mask]
      if (!upd) {
        const names = TASK_COLUMNS.filter((c) => c in cols)
        upd = this.updates[mask] = this.db.prepare(
          `UPDATE engine_tasks SET ${names.map((c) => `${c} = ?`).join(', ')} WHERE deployment_id = ? AND idx = ?`,
        )
        this.updateColumns[mask] = names
      }
      const names = this.updateColumns[mask]
      const params: unknown[] = new Array(names.length + 2)
      for (let k = 0; k < names.length; k++) params[k] = cols[names[k]]
      params[names.length] = id
      params[names.length + 1] = idx
      upd.run(...params)
    }
    for (const [node, status] of nodes) this.updNode.run(status, id, node)
    this.remove.run(id, rows[rows.length - 1].seq)
    return n
  }
}

/**
 * Folds every deployment's journal if this database has one (migration 0102 applied); StateStore.open calls it,
 * so a killed engine's last batches are in the task tables before any reader of a newly opened store looks.
 */
export function foldEngineJournals(db: Database.Database): number {
  if (!db.prepare(`SELECT 1 FROM schema_migrations WHERE id = '0102_engine_journal'`).get()) return 0
  return new Folder(db).fold()
}

/** Epoch ms → ISO-8601, remembering the last few (the transitions of a batch share their milliseconds). */
function isoCache(): (ms: number) => string {
  const seen = new Map<number, string>()
  return (ms) => {
    let s = seen.get(ms)
    if (s === undefined) {
      if (seen.size > 4096) seen.clear()
      seen.set(ms, (s = new Date(ms).toISOString()))
    }
    return s
  }
}

/** How long a journalled transition may wait before the engine folds it into the task tables itself. */
export const FOLD_INTERVAL_MS = 250

/**
 * The scheduler's journal. `record()` buffers a transition; `flush()` — which the scheduler calls before it starts
 * any task — appends the buffer as ONE row of engine_journal and commits: a one-page append, however many tasks
 * the batch starts or ends. The task tables follow within FOLD_INTERVAL_MS: a timer folds the journal into them
 * (see Folder) off the scheduling path, and `finish()` folds the rest.
 *
 * Why not update engine_tasks in the flush, as before: each transition touched its own page of engine_tasks (the
 * tasks of ~50 busy nodes, spread over the table), so a commit wrote ~10–15 pages to the WAL — ~230 µs a commit,
 * 2.2 s of 3.7 s engine CPU in bench/engine.mjs. A fold touches each page once per interval, and a task that starts
 * and ends in one interval is one UPDATE instead of two.
 *
 * Readers: engine_tasks, engine_task_history and engine_nodes may lag the journal by one interval while an
 * engine runs, and a killed engine leaves its last rows unfolded. So every reader goes through EngineStore's
 * `tasks()`, `history()`, `nodes()` or `fold()`, which fold first; raw SQL on those tables after a kill must call
 * `fold()` before it reads. The durable record of what was acted on is the journal row, committed before the act.
 */
export class SqliteJournal implements Journal {
  private buffer: Entry[] = []
  private readonly append: (seq: number, batch: string) => void
  private readonly upDigests: Database.Statement
  private readonly upDuration: Database.Statement
  private readonly startedAt = new Map<number, number>()
  private readonly durations = new Map<string, { n: number; sum: number }>()
  private foldTimer?: NodeJS.Timeout
  private foldError?: unknown

  constructor(
    readonly db: Database.Database,
    readonly deploymentId: number,
    readonly environment: string,
    readonly plan: ExecutionPlan,
    /** Next history seq (the fold writes the seqs the journal hands out). */
    private seq: number,
    /** Next engine_journal seq of this deployment. */
    private journalSeq: number,
    private readonly folder: Folder,
    private readonly foldIntervalMs = FOLD_INTERVAL_MS,
  ) {
    const ins = db.prepare('INSERT INTO engine_journal (deployment_id, seq, batch) VALUES (?, ?, ?)')
    this.append = db.transaction((seq: number, batch: string) => {
      ins.run(deploymentId, seq, batch)
      crashPoint('journal-write') // test-only (state/crash-hook.ts): killed with the batch written, uncommitted
    })
    // (SQLite needs the WHERE for ON CONFLICT after a SELECT with a join; it has one.)
    this.upDigests = db.prepare(
      `INSERT INTO engine_task_digests (environment, node, task, digest, deployment_id, at)
       SELECT ?, t.node, t.task, d.digest, t.deployment_id, t.finished_at
         FROM engine_tasks t JOIN engine_task_definitions d ON d.deployment_id = t.deployment_id AND d.idx = t.idx
         WHERE t.deployment_id = ? AND t.status = 'succeeded' AND d.digest IS NOT NULL
       ON CONFLICT (environment, node, task) DO UPDATE SET digest = excluded.digest,
         deployment_id = excluded.deployment_id, at = excluded.at`,
    )
    this.upDuration = db.prepare(
      `INSERT INTO engine_durations (task, samples, mean_ms) VALUES (?, 1, ?)
       ON CONFLICT (task) DO UPDATE SET samples = MIN(engine_durations.samples + 1, 20),
         mean_ms = engine_durations.mean_ms + (excluded.mean_ms - engine_durations.mean_ms)
           / MIN(engine_durations.samples + 1, 20)`,
    )
  }

  record(t: Transition): void {
    if (t.kind === 'node') {
      this.buffer.push([-1, t.status, t.at, t.node])
      return
    }
    if (t.status === 'running') {
      this.startedAt.set(t.index, t.at)
      this.buffer.push([t.index, 'running', t.at, t.attempt ?? 1])
      return
    }
    const o = t.outcome
    const tail = o?.outputTail?.length ? o.outputTail.join('\n') : (o?.error?.tail?.join('\n') ?? null)
    const start = this.startedAt.get(t.index)
    this.buffer.push([
      t.index,
      t.status,
      t.at,
      t.attempt ?? null,
      this.seq++,
      start !== undefined && t.attempt !== undefined ? start : null,
      t.reason ?? null,
      o?.error ?? null,
      tail,
      o?.changes?.length ? o.changes : null,
    ])
    if (t.status === 'succeeded' && start !== undefined) {
      // Durations are statistics: aggregated here, written once by finish().
      const task = this.plan.tasks[t.index]
      const d = this.durations.get(task.id) ?? { n: 0, sum: 0 }
      d.n++
      d.sum += Math.max(0, t.at - start)
      this.durations.set(task.id, d)
    }
  }

  /** Transitions recorded and not yet written (the bench counts commits with it). */
  get pending(): number {
    return this.buffer.length
  }

  flush(): void {
    this.rethrowFoldError()
    if (this.buffer.length === 0) return
    const batch = this.buffer
    this.buffer = []
    this.append(this.journalSeq++, JSON.stringify(batch))
    crashPoint('journal-commit') // test-only: killed after the commit, before the scheduler acts on it
    // Unref'd: a pending fold never keeps the process alive (what it would fold is durable already).
    this.foldTimer ??= setTimeout(() => {
      this.foldTimer = undefined
      try {
        this.folder.fold(this.deploymentId)
      } catch (e) {
        this.foldError ??= e // surfaces at the next flush or finish, on the scheduling path
      }
    }, this.foldIntervalMs).unref()
  }

  /** Folds what is journalled now (the timer does this on its own; tests and readers may ask for it). */
  fold(): void {
    this.flush()
    if (this.foldTimer) clearTimeout(this.foldTimer)
    this.foldTimer = undefined
    this.folder.fold(this.deploymentId)
  }

  /**
   * End of a run: the journal folded, then the digests of every task that succeeded in this deployment (redeploy
   * compares against them; written once here rather than per task — a crashed run's tasks get theirs when it is
   * resumed) and the learned durations (mean per task id, blended into the stored mean).
   */
  finish(): void {
    this.fold()
    const batch = [...this.durations]
    this.durations.clear()
    this.db.transaction(() => {
      // One statement for every digest (40,000 single-row upserts cost ~3x the CPU in bench/engine.mjs).
      this.upDigests.run(this.environment, this.deploymentId)
      for (const [task, d] of batch) this.upDuration.run(task, d.sum / d.n)
    })()
  }

  private rethrowFoldError(): void {
    if (this.foldError === undefined) return
    const e = this.foldError
    this.foldError = undefined
    throw e
  }
}
