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
import { dialectOf, type Backend } from '../state/driver.js'
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

/**
 * Same shape as the state store's migrations (src/state/migrations.ts): portable SQL, one statement per entry —
 * or, where no portable SQL exists (a view that reads JSON), the statement for each backend.
 */
export interface Migration {
  id: string
  statements: (string | Record<Backend, string>)[]
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

/**
 * The history of a task attempt as the journal holds it (an "end" Entry, see below), as engine_task_history's
 * columns, from one of the journal's two tables. Times are epoch milliseconds in the journal and ISO-8601 text
 * (JavaScript's toISOString, to the millisecond) in the tables: SQLite's strftime from unixepoch and PostgreSQL's
 * epoch + interval give the same text.
 */
const historyFrom: Record<Backend, (table: string) => string> = {
  sqlite: (table) => `SELECT j.deployment_id, e.value ->> 4, e.value ->> 0, e.value ->> 1, e.value ->> 3,
      strftime('%Y-%m-%dT%H:%M:%fZ', (e.value ->> 5) / 1000.0, 'unixepoch'),
      strftime('%Y-%m-%dT%H:%M:%fZ', (e.value ->> 2) / 1000.0, 'unixepoch'),
      e.value ->> 6, e.value ->> 7, e.value ->> 8, e.value ->> 9
    FROM ${table} j, json_each(j.batch) e
    WHERE e.value ->> 0 >= 0 AND e.value ->> 1 <> 'running'`,
  postgresql: (table) => `SELECT j.deployment_id, (e ->> 4)::integer, (e ->> 0)::integer, e ->> 1, (e ->> 3)::integer,
      to_char(TIMESTAMP '1970-01-01' + (e ->> 5)::bigint * INTERVAL '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      to_char(TIMESTAMP '1970-01-01' + (e ->> 2)::bigint * INTERVAL '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      e ->> 6, e ->> 7, e ->> 8, e ->> 9
    FROM ${table} j CROSS JOIN LATERAL json_array_elements(j.batch::json) e
    WHERE (e ->> 0)::integer >= 0 AND e ->> 1 <> 'running'`,
}
const HISTORY_COLUMNS =
  'deployment_id, seq, idx, status, attempt, started_at, at, reason, error_json, output_tail, changes_json'
const historyView = (dialect: Backend) => `CREATE VIEW engine_task_history (${HISTORY_COLUMNS}) AS
  SELECT ${HISTORY_COLUMNS} FROM engine_task_notes
  UNION ALL ${historyFrom[dialect]('engine_journal')}
  UNION ALL ${historyFrom[dialect]('engine_journal_tail')}`

ENGINE_MIGRATIONS.push({
  id: '0104_engine_history_in_journal',
  // The journal's rows are kept and ARE the task history. A flush appends to engine_journal_tail — no primary key,
  // no index: its COMMIT writes ~1.4 WAL pages where engine_journal's (deployment_id, seq) key made it ~2.5 (table
  // and index). A fold applies the tail to engine_tasks and engine_nodes (one UPDATE per task touched, where it
  // also inserted a history row per ended attempt) and moves the rows it applied into engine_journal, in one
  // statement. engine_task_history becomes a view: the rows written outside the journal (resume's "interrupted"
  // notes, and the history folded before this migration) in engine_task_notes, plus every ended attempt in the
  // journal, folded or not. Rows journalled before this migration were all unfolded (folds deleted them): they
  // move to the tail.
  statements: [
    `CREATE TABLE engine_journal_tail (
      deployment_id INTEGER NOT NULL REFERENCES engine_deployments (id) ON DELETE CASCADE,
      seq INTEGER NOT NULL,
      batch TEXT NOT NULL
    )`,
    `INSERT INTO engine_journal_tail (deployment_id, seq, batch) SELECT deployment_id, seq, batch FROM engine_journal`,
    `DELETE FROM engine_journal`,
    `ALTER TABLE engine_task_history RENAME TO engine_task_notes`,
    { sqlite: historyView('sqlite'), postgresql: historyView('postgresql') },
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
    const dialect = dialectOf(db)
    for (const st of m.statements) db.exec(typeof st === 'string' ? st : st[dialect])
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
    const id = create.immediate()
    // The plan is the largest write of a deployment (~4,000 WAL pages for 40,000 tasks): copied into the database
    // file here, rather than by the run's first checkpoint, in the middle of scheduling.
    if (dialectOf(this.db) === 'sqlite') this.db.pragma('wal_checkpoint(PASSIVE)')
    return id
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

  /**
   * Ended attempts and notes, in seq order. engine_task_history is a view that reads the journal itself, so what a
   * running engine journalled is there at once, folded or not.
   */
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
      `INSERT INTO engine_task_notes (deployment_id, seq, idx, status, attempt, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    const at = iso(Date.now())
    rows.forEach((r, k) => ins.run(id, next + k, r.idx, r.status, r.attempt, at, r.reason))
  }

  /**
   * The next history seq of deployment `id`: after the notes' and the journal's. Journal entries carry increasing
   * seqs, so the journal's last is in its newest row with an ended attempt (the tail's rows are newer than the
   * folded ones) — read from the newest row back, without expanding the whole journal as the view would.
   */
  nextSeq(id: number): number {
    const notes = this.db
      .prepare<[number], { last: number | null }>(
        'SELECT MAX(seq) AS last FROM engine_task_notes WHERE deployment_id = ?',
      )
      .get(id)
    const last = notes?.last ?? 0
    for (const table of ['engine_journal_tail', 'engine_journal']) {
      const page = this.db.prepare<[number, number], { seq: number; batch: string }>(
        `SELECT seq, batch FROM ${table} WHERE deployment_id = ? AND seq < ? ORDER BY seq DESC LIMIT 16`,
      )
      let before = 2 ** 31 - 1 // above every seq (an INTEGER column on PostgreSQL: 32 bits)
      for (;;) {
        const rows = page.all(id, before)
        for (const r of rows) {
          const entries = JSON.parse(r.batch) as Entry[]
          for (let k = entries.length - 1; k >= 0; k--) {
            const e = entries[k]
            if (e[0] >= 0 && e[1] !== 'running') return Math.max(last, e[4] as number) + 1
          }
        }
        if (rows.length < 16) break
        before = rows[rows.length - 1].seq
      }
    }
    return last + 1
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
    this.fold(deploymentId) // what an earlier run of this deployment left unfolded (a kill) goes in first
    const seq = this.nextSeq(deploymentId)
    this.backfillDigests(deploymentId, plan)
    const r = this.db
      .prepare<[number, number], { next: number }>(
        `SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM (
           SELECT seq FROM engine_journal WHERE deployment_id = ? UNION ALL
           SELECT seq FROM engine_journal_tail WHERE deployment_id = ?) s`,
      )
      .get(deploymentId, deploymentId)
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

/** Columns of engine_tasks a fold sets, in the order FoldSet gives their values. */
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
 * What a fold writes, gathered from journal entries in order: per task, the engine_tasks columns its transitions
 * set (later ones overwrite earlier ones), and per node its last status. Flat arrays indexed by task, not an
 * object per transition: the engine's journal fills one as it records (no entry kept for the fold), a reader
 * fills one from the rows it parsed.
 *   start: status 'running', attempt, started_at; finished_at and error_json cleared.
 *   end:   status, attempt (when known), finished_at, reason, error_json, output_tail, changes_json.
 */
class FoldSet {
  /** Which columns beyond status/finished_at/error_json are set: ATTEMPT, STARTED, END (reason, tail, changes). */
  private mask: Uint8Array
  private status: TaskStatus[] = []
  private attempt: Int32Array
  private started: Float64Array
  private finished: Float64Array // NaN: NULL
  /** reason, error_json, output_tail, changes_json of a task whose last end had any of them (else all NULL). */
  private readonly ends = new Map<number, EndColumns>()
  private touched: number[] = []
  readonly nodes = new Map<string, NodeStatus>()
  /** Transitions gathered (what fold() reports). */
  count = 0

  constructor(size: number) {
    this.mask = new Uint8Array(size)
    this.attempt = new Int32Array(size)
    this.started = new Float64Array(size)
    this.finished = new Float64Array(size)
  }

  start(idx: number, at: number, attempt: number): void {
    this.touch(idx)
    this.mask[idx] |= ATTEMPT | STARTED | TOUCHED
    this.status[idx] = 'running'
    this.attempt[idx] = attempt
    this.started[idx] = at
    this.finished[idx] = NaN
    const e = this.ends.get(idx)
    if (e) e.error = null
    this.count++
  }

  end(idx: number, status: TaskStatus, at: number, attempt: number | null, cols: EndColumns | null): void {
    this.touch(idx)
    this.mask[idx] |= END | TOUCHED | (attempt !== null ? ATTEMPT : 0)
    this.status[idx] = status
    if (attempt !== null) this.attempt[idx] = attempt
    this.finished[idx] = at
    if (cols) this.ends.set(idx, cols)
    else this.ends.delete(idx)
    this.count++
  }

  node(node: string, status: NodeStatus): void {
    this.nodes.set(node, status)
    this.count++
  }

  /** An entry as stored in a journal row. */
  add(e: Entry): void {
    if (e[0] === -1) this.node(e[3] as string, e[1] as NodeStatus)
    else if (e[1] === 'running') this.start(e[0], e[2], e[3] as number)
    else {
      const [idx, status, at, attempt, , , reason, error, tail, changes] = e as Extract<Entry, { length: 10 }>
      const errorJson = error ? JSON.stringify(error) : null
      this.end(idx, status, at, attempt, endColumns(reason, errorJson, tail, changes ? JSON.stringify(changes) : null))
    }
  }

  /**
   * Calls `write` per task touched, with the mask of the columns set (bits ATTEMPT, STARTED, END) and the values in
   * TASK_COLUMNS order (those the mask leaves out skipped); `iso` turns epoch ms into the tables' text.
   */
  forEach(iso: (ms: number) => string, write: (idx: number, mask: number, values: unknown[]) => void): void {
    const values: unknown[] = []
    for (const idx of this.touched) {
      const m = this.mask[idx]
      values.length = 0
      values.push(this.status[idx])
      if (m & ATTEMPT) values.push(this.attempt[idx])
      if (m & STARTED) values.push(iso(this.started[idx]))
      const f = this.finished[idx]
      values.push(f === f ? iso(f) : null)
      const e = this.ends.get(idx)
      if (m & END) values.push(e?.reason ?? null)
      values.push(e?.error ?? null)
      if (m & END) values.push(e?.tail ?? null, e?.changes ?? null)
      write(idx, m & (ATTEMPT | STARTED | END), values)
    }
  }

  /** Empty again, keeping its arrays. */
  clear(): void {
    for (const idx of this.touched) this.mask[idx] = 0
    this.touched.length = 0
    this.ends.clear()
    this.nodes.clear()
    this.count = 0
  }

  private touch(idx: number): void {
    if (idx >= this.mask.length) this.grow(idx + 1)
    if (!(this.mask[idx] & TOUCHED)) this.touched.push(idx)
  }

  private grow(min: number): void {
    const size = Math.max(min, this.mask.length * 2)
    const grow = <T extends Uint8Array | Int32Array | Float64Array>(a: T, b: T): T => (b.set(a), b)
    this.mask = grow(this.mask, new Uint8Array(size))
    this.attempt = grow(this.attempt, new Int32Array(size))
    this.started = grow(this.started, new Float64Array(size))
    this.finished = grow(this.finished, new Float64Array(size))
  }
}

const Q_START = 0
const Q_END = 1
const Q_NODE = 2
const ATTEMPT = 1
const STARTED = 2
const END = 4
const TOUCHED = 8

/** The end columns other than status and times, as stored (JSON documents as text). */
interface EndColumns {
  reason: string | null
  error: string | null
  tail: string | null
  changes: string | null
}

/** An end's columns as stored, or null when it sets none of them (the common success). */
function endColumns(
  reason: string | null,
  error: string | null,
  tail: string | null,
  changes: string | null,
): EndColumns | null {
  if (reason === null && error === null && tail === null && changes === null) return null
  return { reason, error, tail, changes }
}

/** What a journal committed and has not folded yet: its rows firstSeq..lastSeq, gathered. */
interface LocalFold {
  firstSeq: number
  lastSeq: number
  set: FoldSet
}

/**
 * Folds journalled transitions into engine_tasks and engine_nodes: the deployment's rows of engine_journal_tail, in
 * order, in one immediate transaction that also moves them into engine_journal — so a fold applies each entry
 * exactly once, whichever process runs it (the engine on its timer and at the end, a reader before it reads, the
 * next run after a kill), and concurrent folds queue on the writer lock. Rows are moved, not deleted: they are the
 * history (the engine_task_history view reads both tables).
 * A task touched several times between folds gets one UPDATE with the union of the columns its transitions set,
 * in order (start then end of an attempt: status, attempt, both times, reason, error, tail, changes).
 * The engine folds its own batches from memory (`local`): the columns of the entries it committed, gathered as it
 * recorded them, not read back and parsed.
 */
class Folder {
  private readonly pendingIds: Database.Statement<[], { deployment_id: number }>
  private readonly hasRows: Database.Statement<[number], { one: number }>
  private readonly firstSeq: Database.Statement<[number], { seq: number | null }>
  private readonly rows: Database.Statement<[number], { seq: number; batch: string }>
  private readonly move: Database.Statement<[number, number]>
  private readonly remove: Database.Statement<[number, number]>
  private readonly updNode: Database.Statement
  private readonly updates: Database.Statement[] = []
  private readonly foldOne: (id: number, local?: LocalFold) => number

  constructor(private readonly db: Database.Database) {
    this.pendingIds = db.prepare('SELECT DISTINCT deployment_id FROM engine_journal_tail')
    this.hasRows = db.prepare('SELECT 1 AS one FROM engine_journal_tail WHERE deployment_id = ? LIMIT 1')
    this.firstSeq = db.prepare('SELECT MIN(seq) AS seq FROM engine_journal_tail WHERE deployment_id = ?')
    this.rows = db.prepare('SELECT seq, batch FROM engine_journal_tail WHERE deployment_id = ? ORDER BY seq')
    this.move = db.prepare(
      `INSERT INTO engine_journal (deployment_id, seq, batch)
       SELECT deployment_id, seq, batch FROM engine_journal_tail WHERE deployment_id = ? AND seq <= ?`,
    )
    this.remove = db.prepare('DELETE FROM engine_journal_tail WHERE deployment_id = ? AND seq <= ?')
    this.updNode = db.prepare('UPDATE engine_nodes SET status = ? WHERE deployment_id = ? AND node = ?')
    const tx = db.transaction((id: number, local?: LocalFold) => this.apply(id, local))
    this.foldOne = (id, local) => tx.immediate(id, local)
  }

  /** Folds deployment `id` (every deployment with unfolded rows when omitted); returns the transitions applied. */
  fold(id?: number, local?: LocalFold): number {
    if (id === undefined) {
      let n = 0
      for (const r of this.pendingIds.all()) n += this.fold(r.deployment_id)
      return n
    }
    if (local) {
      // Everything this journal committed since its last fold is in `local`, and only it appends to its
      // deployment's journal.
      if (local.lastSeq < local.firstSeq) return 0
    } else if (!this.hasRows.get(id)) {
      // The common case for readers: nothing to fold, and no writer lock taken to find that out.
      return 0
    }
    return this.foldOne(id, local)
  }

  private apply(id: number, local?: LocalFold): number {
    let set: FoldSet | undefined
    let last = 0
    if (local) {
      // The tail holds a suffix of what this journal committed: another process may have folded the rest (a
      // reader). Applying all of `local` is still right: every column takes the last value this journal gave it,
      // and for columns only the folded rows set, that is the value already there (nothing else writes them).
      const first = this.firstSeq.get(id)?.seq ?? null
      if (first === null) return 0
      if (first >= local.firstSeq && first <= local.lastSeq) {
        set = local.set
        last = local.lastSeq
      }
    }
    if (!set) {
      const rows = this.rows.all(id)
      if (rows.length === 0) return 0
      set = new FoldSet(1024)
      for (const r of rows) for (const e of JSON.parse(r.batch) as Entry[]) set.add(e)
      last = rows[rows.length - 1].seq
    }
    set.forEach(isoCache(), (idx, mask, values) => {
      // One prepared UPDATE per combination of columns, looked up by the 3-bit mask (no per-task string building).
      let upd = this.updates[mask]
      if (!upd) {
        const names = TASK_COLUMNS.filter(
          (c) =>
            !(
              (c === 'attempt' && !(mask & ATTEMPT)) ||
              (c === 'started_at' && !(mask & STARTED)) ||
              ((c === 'reason' || c === 'output_tail' || c === 'changes_json') && !(mask & END))
            ),
        )
        upd = this.updates[mask] = this.db.prepare(
          `UPDATE engine_tasks SET ${names.map((c) => `${c} = ?`).join(', ')} WHERE deployment_id = ? AND idx = ?`,
        )
      }
      values.push(id, idx)
      upd.run(...values)
    })
    for (const [node, status] of set.nodes) this.updNode.run(status, id, node)
    this.move.run(id, last)
    this.remove.run(id, last)
    return set.count
  }
}

/**
 * Folds every deployment's journal if this database has one (migration 0102 applied; the engine's later
 * migrations are applied first); StateStore.open calls it, so a killed engine's last batches are in the task
 * tables before any reader of a newly opened store looks.
 */
export function foldEngineJournals(db: Database.Database): number {
  if (!db.prepare(`SELECT 1 FROM schema_migrations WHERE id = '0102_engine_journal'`).get()) return 0
  applyMigrations(db, ENGINE_MIGRATIONS)
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
/** How often a running journal's timer folds also checkpoint the WAL (see checkpointHolds). */
const CHECKPOINT_INTERVAL_MS = 1000

/**
 * WAL checkpoints of a SQLite connection while a journal runs on it: automatic checkpoints off (one would land
 * inside whichever journal COMMIT crosses the threshold — a 70–200 ms stall on the scheduling path in
 * bench/engine.mjs), and a PASSIVE checkpoint after a timer fold at most every CHECKPOINT_INTERVAL_MS and at the
 * end of the run instead.
 * Durability is unchanged for what the journal promises: in WAL mode a COMMIT has written its frames to the WAL
 * file before it returns, and with synchronous=NORMAL that is what survives a kill of the process (the kernel has
 * the data; the next connection replays the WAL). A checkpoint copies the WAL into the database file and is the
 * only point where NORMAL fsyncs the WAL, so it bounds what an OS crash or power cut may take back: here the
 * commits of the last ~CHECKPOINT_INTERVAL_MS + FOLD_INTERVAL_MS, where automatic checkpoints allowed up to 10,000
 * WAL pages (~5 s of this bench's journal). Neither can corrupt the file: the WAL's checksums cut a torn tail.
 * Held per connection and counted, so two journals on one connection (the server's) give the setting back only
 * when the last one ends.
 */
const checkpointHolds = new WeakMap<Database.Database, { users: number; saved: number }>()

function holdCheckpoints(db: Database.Database): void {
  const h = checkpointHolds.get(db)
  if (h) h.users++
  else {
    checkpointHolds.set(db, { users: 1, saved: Number(db.pragma('wal_autocheckpoint', { simple: true })) })
    db.pragma('wal_autocheckpoint = 0')
  }
}

function releaseCheckpoints(db: Database.Database): void {
  const h = checkpointHolds.get(db)
  if (!h || --h.users > 0) return
  checkpointHolds.delete(db)
  db.pragma(`wal_autocheckpoint = ${h.saved}`)
}

/**
 * The scheduler's journal. `record()` buffers a transition; `flush()` — which the scheduler calls before it starts
 * any task — appends the buffer as ONE row of engine_journal and commits: a one-page append, however many tasks
 * the batch starts or ends. That row is the durable record of what is acted on, and stays as the history of the
 * attempts that ended in it (the engine_task_history view). The task and node tables follow within
 * FOLD_INTERVAL_MS: a timer folds the journal into them (see Folder) off the scheduling path, from the columns
 * this journal gathered as its batches committed (a FoldSet: flat arrays per task, no entry kept), and `finish()`
 * folds the rest. Against keeping each batch's entries as arrays for the fold (and JSON.stringify-ing them in the
 * flush), bench/engine.mjs's journal run measured 1.96–2.01 s of engine CPU against 2.21–2.38 s at load 2.6–5, and
 * no difference on a quiet machine (2.38–2.48 s against 2.17–2.56 s): it allocates less, which counts when the
 * machine is busy.
 *
 * Why not update engine_tasks in the flush, as before the journal: each transition touched its own page of
 * engine_tasks (the tasks of ~50 busy nodes, spread over the table), so a commit wrote ~10–15 pages to the WAL —
 * ~230 µs a commit, 2.2 s of 3.7 s engine CPU in bench/engine.mjs. A fold touches each page once per interval,
 * and a task that starts and ends in one interval is one UPDATE instead of two.
 *
 * Readers: engine_tasks and engine_nodes may lag the journal by one interval while an engine runs, and a killed
 * engine leaves its last rows unfolded. So every reader goes through EngineStore's `tasks()`, `nodes()` or
 * `fold()`, which fold first; raw SQL on those tables after a kill must call `fold()` before it reads.
 * engine_task_history never lags: it reads the journal.
 */
export class SqliteJournal implements Journal {
  /** The transitions recorded since the last flush, as the JSON of their entries, comma-separated (see Entry). */
  private buffer = ''
  private buffered = 0
  /**
   * What the batches committed since this journal's last fold set (another process may have folded some):
   * gathered as they are recorded, so the fold keeps no entry and parses nothing.
   */
  private unfolded: FoldSet
  /**
   * The transitions recorded and not flushed yet, for `unfolded` once they commit (a fold must not apply what is
   * not committed): flat, reused — [START, idx, at, attempt | END, idx, status, at, attempt, columns | NODE, node,
   * status], ...
   */
  private readonly queued: unknown[] = []
  private unfoldedFrom: number
  private readonly append: (seq: number, batch: string) => void
  private readonly upDigests: Database.Statement
  private readonly upDuration: Database.Statement
  /** Start of each task's current attempt (epoch ms; NaN: none recorded by this journal). */
  private readonly startedAt: Float64Array
  private readonly durations = new Map<string, { n: number; sum: number }>()
  private readonly sqlite: boolean
  private foldTimer?: NodeJS.Timeout
  private foldError?: unknown
  private closed = false
  private checkpointedAt = Date.now()

  constructor(
    readonly db: Database.Database,
    readonly deploymentId: number,
    readonly environment: string,
    readonly plan: ExecutionPlan,
    /** Next history seq (the seq an ended attempt's entry carries). */
    private seq: number,
    /** Next engine_journal seq of this deployment. */
    private journalSeq: number,
    private readonly folder: Folder,
    private readonly foldIntervalMs = FOLD_INTERVAL_MS,
  ) {
    this.unfoldedFrom = journalSeq
    this.startedAt = new Float64Array(plan.tasks.length).fill(NaN)
    this.unfolded = new FoldSet(plan.tasks.length)
    const ins = db.prepare('INSERT INTO engine_journal_tail (deployment_id, seq, batch) VALUES (?, ?, ?)')
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
    this.sqlite = dialectOf(db) === 'sqlite'
    if (this.sqlite) holdCheckpoints(db)
  }

  /**
   * Buffers a transition: its entry's JSON is written here, by hand (the same text JSON.stringify gives for the
   * entry, without building it), and its columns go into the pending fold.
   */
  record(t: Transition): void {
    const sep = this.buffered++ === 0 ? '' : ','
    if (t.kind === 'node') {
      this.buffer += `${sep}[-1,"${t.status}",${t.at},${JSON.stringify(t.node)}]`
      this.queued.push(Q_NODE, t.node, t.status)
      return
    }
    if (t.status === 'running') {
      const attempt = t.attempt ?? 1
      this.startedAt[t.index] = t.at
      this.buffer += `${sep}[${t.index},"running",${t.at},${attempt}]`
      this.queued.push(Q_START, t.index, t.at, attempt)
      return
    }
    const o = t.outcome
    const tail = o?.outputTail?.length ? o.outputTail.join('\n') : (o?.error?.tail?.join('\n') ?? null)
    const start = this.startedAt[t.index]
    const started = start === start && t.attempt !== undefined ? start : null
    const reason = t.reason ?? null
    const error = o?.error ? JSON.stringify(o.error) : null
    const changes = o?.changes?.length ? o.changes : null
    const changesJson = changes ? JSON.stringify(changes) : null
    this.buffer +=
      `${sep}[${t.index},"${t.status}",${t.at},${t.attempt ?? null},${this.seq++},${started},` +
      `${reason === null ? null : JSON.stringify(reason)},${error},${tail === null ? null : JSON.stringify(tail)},${changesJson}]`
    this.queued.push(Q_END, t.index, t.status, t.at, t.attempt ?? null, endColumns(reason, error, tail, changesJson))
    if (t.status === 'succeeded' && start === start) {
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
    return this.buffered
  }

  flush(): void {
    this.rethrowFoldError()
    if (this.buffered === 0) return
    const batch = `[${this.buffer}]`
    const seq = this.journalSeq
    this.append(seq, batch)
    this.buffer = ''
    this.buffered = 0
    this.journalSeq = seq + 1
    this.merge()
    crashPoint('journal-commit') // test-only: killed after the commit, before the scheduler acts on it
    // Unref'd: a pending fold never keeps the process alive (what it would fold is durable already).
    this.foldTimer ??= setTimeout(() => {
      this.foldTimer = undefined
      try {
        this.foldLocal()
        this.checkpoint()
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
    this.foldLocal()
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
    this.checkpoint(true)
    this.close()
  }

  /** Stops the fold timer and gives the connection's automatic checkpoints back (finish() does it; idempotent). */
  close(): void {
    if (this.foldTimer) clearTimeout(this.foldTimer)
    this.foldTimer = undefined
    if (this.closed) return
    this.closed = true
    if (this.sqlite) releaseCheckpoints(this.db)
  }

  private foldLocal(): void {
    const set = this.unfolded
    this.folder.fold(this.deploymentId, { firstSeq: this.unfoldedFrom, lastSeq: this.journalSeq - 1, set })
    set.clear()
    this.unfoldedFrom = this.journalSeq
  }

  /** The batch just committed joins what the next fold applies. */
  private merge(): void {
    const q = this.queued
    const set = this.unfolded
    for (let k = 0; k < q.length;) {
      if (q[k] === Q_START) {
        set.start(q[k + 1] as number, q[k + 2] as number, q[k + 3] as number)
        k += 4
      } else if (q[k] === Q_END) {
        const cols = q[k + 5] as EndColumns | null
        set.end(q[k + 1] as number, q[k + 2] as TaskStatus, q[k + 3] as number, q[k + 4] as number | null, cols)
        k += 6
      } else {
        set.node(q[k + 1] as string, q[k + 2] as NodeStatus)
        k += 3
      }
    }
    q.length = 0
  }

  private checkpoint(force = false): void {
    if (!this.sqlite) return
    const now = Date.now()
    if (!force && now - this.checkpointedAt < CHECKPOINT_INTERVAL_MS) return
    this.checkpointedAt = now
    this.db.pragma('wal_checkpoint(PASSIVE)')
  }

  private rethrowFoldError(): void {
    if (this.foldError === undefined) return
    const e = this.foldError
    this.foldError = undefined
    throw e
  }
}
