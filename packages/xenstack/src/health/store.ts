/**
 * Run history of the health checks in xenstack's state store (migrations `04xx`): one row per run and one per
 * test of the run, written before a test starts and when it ends, so `health show` and the API see a run as it
 * goes and after the process that ran it is gone.
 *
 * "One active run per test set and environment" is a unique column: `active_key` holds `<env>\n<set>` while the
 * run is running and NULL afterwards (portable: SQLite and PostgreSQL both allow many NULLs in a unique column).
 * A run left `running` by a process that died is closed as `stopped` the next time someone asks for that slot.
 *
 * Everything written goes through `redact()` first: evidence (config files, command output) never stores a
 * password in plain text.
 */
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Migration } from '../state/migrations.js'
import type { StateStore } from '../state/store.js'
import { redact } from '../node/secret.js'
import type { Evidence, RunRecord, RunStatus, TestResult, TestStatus } from './types.js'

export const HEALTH_MIGRATIONS: Migration[] = [
  {
    id: '0400_health_runs',
    statements: [
      `CREATE TABLE health_runs (
        id TEXT PRIMARY KEY,
        environment TEXT NOT NULL,
        testset TEXT NOT NULL,
        status TEXT NOT NULL,
        active_key TEXT UNIQUE,
        meta_json TEXT NOT NULL,
        pid INTEGER,
        host TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT
      )`,
      `CREATE INDEX health_runs_by_env ON health_runs (environment, testset, started_at)`,
      `CREATE TABLE health_results (
        run_id TEXT NOT NULL REFERENCES health_runs (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        test_id TEXT NOT NULL,
        testset TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        duration TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        step INTEGER,
        taken REAL,
        evidence_json TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        PRIMARY KEY (run_id, position)
      )`,
    ],
  },
]

/** Another run of the same test set is active on the environment (fuel-ostf refuses it too). */
export class ActiveRunError extends Error {
  constructor(readonly run: RunRecord) {
    super(
      `test set ${run.testset} is already running on environment ${run.environment} (run ${run.id}, started ${run.startedAt}); stop it first`,
    )
    this.name = 'ActiveRunError'
  }
}

export class RunNotFoundError extends Error {
  constructor(id: string) {
    super(`health run ${id} does not exist`)
    this.name = 'RunNotFoundError'
  }
}

interface RunRow {
  id: string
  environment: string
  testset: string
  status: RunStatus
  active_key: string | null
  meta_json: string
  pid: number | null
  host: string | null
  started_at: string
  ended_at: string | null
}

interface ResultRow {
  position: number
  test_id: string
  testset: string
  name: string
  description: string
  duration: string
  status: TestStatus
  message: string
  step: number | null
  taken: number | null
  evidence_json: string
  started_at: string | null
  ended_at: string | null
}

const now = () => new Date().toISOString()
const activeKey = (env: string, testset: string) => `${env}\n${testset}`

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Scrubs secrets from evidence values (strings anywhere inside). */
function scrub(v: unknown): unknown {
  if (typeof v === 'string') return redact(v)
  if (Array.isArray(v)) return v.map(scrub)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, scrub(x)]))
  return v
}

export class HealthStore {
  constructor(readonly state: StateStore) {
    state.migrate(HEALTH_MIGRATIONS)
  }

  private get db() {
    return this.state.db
  }

  /**
   * Records a new run with its tests (status wait_running or disabled), refusing while another run of the set is
   * active on the environment. A stale active run (its process is gone) is closed as stopped first.
   */
  createRun(input: {
    environment: string
    testset: string
    meta?: Record<string, unknown>
    tests: TestResult[]
  }): RunRecord {
    const id = randomUUID()
    const key = activeKey(input.environment, input.testset)
    this.state.transaction(() => {
      this.claimSlot(key)
      this.db
        .prepare(
          `INSERT INTO health_runs (id, environment, testset, status, active_key, meta_json, pid, host, started_at, ended_at)
           VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, NULL)`,
        )
        .run(
          id,
          input.environment,
          input.testset,
          key,
          JSON.stringify(input.meta ?? {}),
          process.pid,
          hostname(),
          now(),
        )
      const insert = this.db.prepare(
        `INSERT INTO health_results (run_id, position, test_id, testset, name, description, duration, status, message,
           step, taken, evidence_json, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      input.tests.forEach((t, i) =>
        insert.run(
          id,
          i,
          t.id,
          t.testset,
          t.name,
          t.description,
          t.duration,
          t.status,
          redact(t.message),
          t.step,
          t.taken,
          JSON.stringify(scrub(t.evidence)),
          t.startedAt,
          t.endedAt,
        ),
      )
    })
    return this.run(id)
  }

  /** Puts a finished run back to running for a restart (same slot rules as a new run). */
  reopenRun(id: string, tests: { id: string; status: TestStatus }[]): RunRecord {
    const r = this.row(id)
    const key = activeKey(r.environment, r.testset)
    this.state.transaction(() => {
      this.claimSlot(key)
      this.db
        .prepare(
          `UPDATE health_runs SET status = 'running', active_key = ?, pid = ?, host = ?, ended_at = NULL WHERE id = ?`,
        )
        .run(key, process.pid, hostname(), id)
      const reset = this.db.prepare(
        `UPDATE health_results SET status = ?, message = '', step = NULL, taken = NULL, evidence_json = '[]',
           started_at = NULL, ended_at = NULL WHERE run_id = ? AND test_id = ?`,
      )
      for (const t of tests) reset.run(t.status, id, t.id)
    })
    return this.run(id)
  }

  updateTest(
    runId: string,
    testId: string,
    change: Partial<Pick<TestResult, 'status' | 'message' | 'step' | 'taken' | 'evidence' | 'startedAt' | 'endedAt'>>,
  ): void {
    const sets: string[] = []
    const values: unknown[] = []
    const put = (col: string, v: unknown) => {
      sets.push(`${col} = ?`)
      values.push(v)
    }
    if (change.status !== undefined) put('status', change.status)
    if (change.message !== undefined) put('message', redact(change.message))
    if (change.step !== undefined) put('step', change.step)
    if (change.taken !== undefined) put('taken', change.taken)
    if (change.evidence !== undefined) put('evidence_json', JSON.stringify(scrub(change.evidence)))
    if (change.startedAt !== undefined) put('started_at', change.startedAt)
    if (change.endedAt !== undefined) put('ended_at', change.endedAt)
    if (!sets.length) return
    this.db
      .prepare(`UPDATE health_results SET ${sets.join(', ')} WHERE run_id = ? AND test_id = ?`)
      .run(...values, runId, testId)
  }

  finishRun(runId: string, status: Exclude<RunStatus, 'running'>): void {
    this.db
      .prepare(`UPDATE health_runs SET status = ?, active_key = NULL, ended_at = ? WHERE id = ?`)
      .run(status, now(), runId)
  }

  run(id: string): RunRecord {
    return this.hydrate(this.row(id))
  }

  findRun(id: string): RunRecord | undefined {
    const r = this.db.prepare('SELECT * FROM health_runs WHERE id = ?').get(id) as RunRow | undefined
    return r ? this.hydrate(r) : undefined
  }

  /** Runs, newest first (optionally of one environment). */
  runs(opts: { environment?: string; limit?: number } = {}): RunRecord[] {
    const rows = (
      opts.environment
        ? this.db
            .prepare('SELECT * FROM health_runs WHERE environment = ? ORDER BY started_at DESC, id LIMIT ?')
            .all(opts.environment, opts.limit ?? 100)
        : this.db.prepare('SELECT * FROM health_runs ORDER BY started_at DESC, id LIMIT ?').all(opts.limit ?? 100)
    ) as RunRow[]
    return rows.map((r) => this.hydrate(r))
  }

  /** The latest run of each test set on the environment (fuel-ostf's `/testruns/last/{cluster}`). */
  lastRuns(environment: string): RunRecord[] {
    const rows = this.db
      .prepare(
        `SELECT r.* FROM health_runs r WHERE r.environment = ? AND r.started_at = (
           SELECT MAX(x.started_at) FROM health_runs x WHERE x.environment = r.environment AND x.testset = r.testset)
         ORDER BY r.testset`,
      )
      .all(environment) as RunRow[]
    return rows.map((r) => this.hydrate(r))
  }

  /** The active run of a set on an environment, if any (a stale one is closed and not returned). */
  activeRun(environment: string, testset: string): RunRecord | undefined {
    const r = this.slotHolder(activeKey(environment, testset))
    return r ? this.hydrate(r) : undefined
  }

  /**
   * The run holding an environment's slot for a set, if any. A stale holder (a run of this machine whose process is
   * gone) is closed as stopped and not returned.
   */
  private slotHolder(key: string): RunRow | undefined {
    const r = this.db.prepare('SELECT * FROM health_runs WHERE active_key = ?').get(key) as RunRow | undefined
    if (!r || !this.isOrphan(r)) return r
    this.closeOrphan(r)
    return undefined
  }

  /** Refuses while another run holds the slot. */
  private claimSlot(key: string): void {
    const holder = this.slotHolder(key)
    if (holder) throw new ActiveRunError(this.hydrate(holder))
  }

  private isOrphan(r: RunRow): boolean {
    // Only a run of this machine can be judged by its pid; another host's run stays until it ends or is stopped.
    return r.host === hostname() && (r.pid === null || (r.pid !== process.pid && !pidAlive(r.pid)))
  }

  private closeOrphan(r: RunRow): void {
    this.db
      .prepare(
        `UPDATE health_results SET status = 'stopped', message = ? WHERE run_id = ? AND status IN ('wait_running', 'running')`,
      )
      .run(`the process running it (pid ${r.pid}) ended before the test finished`, r.id)
    this.finishRun(r.id, 'stopped')
  }

  private row(id: string): RunRow {
    const r = this.db.prepare('SELECT * FROM health_runs WHERE id = ?').get(id) as RunRow | undefined
    if (!r) throw new RunNotFoundError(id)
    return r
  }

  private hydrate(r: RunRow): RunRecord {
    const tests = (
      this.db.prepare('SELECT * FROM health_results WHERE run_id = ? ORDER BY position').all(r.id) as ResultRow[]
    ).map((t): TestResult => ({
      id: t.test_id,
      testset: t.testset,
      name: t.name,
      description: t.description,
      duration: t.duration,
      status: t.status,
      message: t.message,
      step: t.step,
      taken: t.taken,
      evidence: JSON.parse(t.evidence_json) as Evidence[],
      startedAt: t.started_at,
      endedAt: t.ended_at,
    }))
    return {
      id: r.id,
      testset: r.testset,
      environment: r.environment,
      status: r.status,
      meta: JSON.parse(r.meta_json) as Record<string, unknown>,
      startedAt: r.started_at,
      endedAt: r.ended_at,
      tests,
    }
  }
}
