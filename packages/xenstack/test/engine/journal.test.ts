import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StateStore } from '../../src/state/store.js'
import { openSqlite, type Database } from '../../src/state/driver.js'
import { buildExecutionPlan } from '../../src/engine/graph.js'
import { applyMigrations, ENGINE_MIGRATIONS, EngineStore, type TaskRow } from '../../src/engine/store.js'

function setup(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-engine-journal-'))
  const state = StateStore.open({ dataDir: dir })
  const db = state.db
  t.after(() => {
    state.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const { plan } = buildExecutionPlan({
    tasks: ['a', 'b', 'c'].map((id, k) => ({
      task: { id, type: 'native', roles: ['*'], requires: k ? [['a', 'b', 'c'][k - 1]] : [], parameters: {} },
      source: 'test',
    })),
    nodes: [{ name: 'n1', roles: ['compute'] }],
  })
  const store = new EngineStore(db)
  const id = store.createDeployment('journal-env', 'deploy', false, plan)
  return { db, dir, store, plan, id }
}

const rawRows = (db: Database, id: number) =>
  db
    .prepare(
      `SELECT idx, key, node, task, status, attempt, started_at, finished_at, reason, error_json, output_tail,
         changes_json FROM engine_tasks WHERE deployment_id = ? ORDER BY idx`,
    )
    .all(id) as TaskRow[]

test('a flushed transition is in the store before it is acted on; retries, history and digests', (t) => {
  const { db, dir, store, plan, id } = setup(t)
  const idx = (task: string) => plan.tasks.findIndex((x) => x.id === task)
  const journal = store.journal(id, 'journal-env', plan)
  const t0 = Date.parse('2026-01-01T00:00:00Z')
  journal.record({ kind: 'task', index: idx('a'), status: 'running', at: t0, attempt: 1 })
  journal.flush()
  // What a reader sees at once (the scheduler launches the task only after this flush).
  assert.equal(store.tasks(id)[idx('a')].status, 'running')
  assert.equal(store.tasks(id)[idx('a')].started_at, '2026-01-01T00:00:00.000Z')
  // Another connection (as another process's) sees the same through the store (which folds the journal first).
  const other = StateStore.open({ dataDir: dir })
  t.after(() => other.close())
  assert.equal(new EngineStore(other.db).tasks(id)[idx('a')].status, 'running')

  // A retry: attempt 1 fails, attempt 2 succeeds; then b is dep-less skipped-style terminal with a reason.
  const error = { node: 'n1', task: 'a', message: 'exit 1', exitCode: 1 }
  journal.record({
    kind: 'task',
    index: idx('a'),
    status: 'failed',
    at: t0 + 1000,
    attempt: 1,
    outcome: { status: 'failed', error, outputTail: ['boom'] },
    reason: 'attempt 1 of 2 failed',
  })
  journal.record({ kind: 'task', index: idx('a'), status: 'running', at: t0 + 2000, attempt: 2 })
  journal.record({
    kind: 'task',
    index: idx('a'),
    status: 'succeeded',
    at: t0 + 3000,
    attempt: 2,
    outcome: { status: 'succeeded', outputTail: ['ok'] },
  })
  journal.record({ kind: 'task', index: idx('b'), status: 'dep_failed', at: t0 + 3000, reason: 'requires x failed' })
  journal.flush()
  const live = store.tasks(id)
  journal.finish()
  const applied = rawRows(db, id)
  assert.deepEqual(applied, live)
  assert.deepEqual(store.tasks(id), applied)
  const a = applied[idx('a')]
  assert.equal(a.status, 'succeeded')
  assert.equal(a.attempt, 2)
  assert.equal(a.started_at, '2026-01-01T00:00:02.000Z')
  assert.equal(a.finished_at, '2026-01-01T00:00:03.000Z')
  assert.equal(a.error_json, null)
  assert.equal(a.output_tail, 'ok')
  const b = applied[idx('b')]
  assert.equal(b.status, 'dep_failed')
  assert.equal(b.reason, 'requires x failed')
  assert.equal(b.attempt, 0)
  assert.equal(applied[idx('c')].status, 'pending')
  // History lists ended attempts.
  assert.deepEqual(
    store.history(id).map((h) => [plan.tasks[h.idx].id, h.status, h.attempt]),
    [
      ['a', 'failed', 1],
      ['a', 'succeeded', 2],
      ['b', 'dep_failed', null],
    ],
  )
  // The redeploy digest of the succeeded task was written from the applied rows.
  const digest = db.prepare(`SELECT task FROM engine_task_digests WHERE environment = 'journal-env'`).all()
  assert.deepEqual(digest, [{ task: 'a' }])
})

test('the SQLite driver the journal commits through: WAL, synchronous NORMAL, checkpoints every 10,000 pages but not while a journal runs', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-engine-journal-pragmas-'))
  const db = openSqlite(join(dir, 'state.db'))
  t.after(() => {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const pragma = (name: string) => db.pragma(name, { simple: true })
  assert.equal(pragma('journal_mode'), 'wal')
  assert.equal(pragma('synchronous'), 1) // NORMAL: no fsync per commit; durable across a process crash
  assert.equal(pragma('wal_autocheckpoint'), 10000)
  assert.equal(pragma('journal_size_limit'), 4194304)
  // A batch committed through the journal is readable from a second connection before anything else happens.
  const store = new EngineStore(db)
  const { plan } = buildExecutionPlan({
    tasks: [{ task: { id: 'x', type: 'native', roles: ['*'], requires: [], parameters: {} }, source: 'test' }],
    nodes: [{ name: 'n1', roles: ['compute'] }],
  })
  const id = store.createDeployment('pragma-env', 'deploy', false, plan)
  const journal = store.journal(id, 'pragma-env', plan)
  // While a journal runs, its connection checkpoints after its folds, never inside a journal COMMIT.
  assert.equal(pragma('wal_autocheckpoint'), 0)
  journal.record({ kind: 'task', index: 0, status: 'running', at: Date.now(), attempt: 1 })
  assert.equal(journal.pending, 1)
  journal.flush()
  assert.equal(journal.pending, 0)
  const other = openSqlite(join(dir, 'state.db'))
  try {
    const batch = other.prepare('SELECT seq, batch FROM engine_journal_tail WHERE deployment_id = ?').all(id) as {
      seq: number
      batch: string
    }[]
    assert.equal(batch.length, 1, 'one journal row per flush')
    assert.equal((JSON.parse(batch[0].batch) as unknown[]).length, 1)
    assert.equal(new EngineStore(other).tasks(id)[0].status, 'running')
  } finally {
    other.close()
  }
  journal.finish()
  assert.equal(pragma('wal_autocheckpoint'), 10000, 'given back at the end of the run')
})

test('the journal is folded into the task tables by the engine, by readers, and when a killed run is reopened', async (t) => {
  const { db, dir, store, plan, id } = setup(t)
  const idx = (task: string) => plan.tasks.findIndex((x) => x.id === task)
  // Journal rows stay (they are the history): a flush appends to engine_journal_tail, a fold moves them to
  // engine_journal.
  const count = (d: Database, table: string) =>
    (d.prepare(`SELECT COUNT(*) AS c FROM ${table} WHERE deployment_id = ?`).get(id) as { c: number }).c
  const journalRows = (d: Database) => count(d, 'engine_journal') + count(d, 'engine_journal_tail')
  const unfoldedRows = (d: Database) => count(d, 'engine_journal_tail')
  const t0 = Date.parse('2026-01-01T00:00:00Z')
  const journal = store.journal(id, 'journal-env', plan)
  // a starts and succeeds, b starts: one flush, one journal row.
  journal.record({ kind: 'task', index: idx('a'), status: 'running', at: t0, attempt: 1 })
  journal.record({ kind: 'node', node: 'n1', status: 'deploying', at: t0 })
  journal.record({
    kind: 'task',
    index: idx('a'),
    status: 'succeeded',
    at: t0 + 1000,
    attempt: 1,
    outcome: { status: 'succeeded', outputTail: ['a done'], changes: [{ resource: 'file /x', result: 'changed' }] },
  })
  journal.record({ kind: 'task', index: idx('b'), status: 'running', at: t0 + 1000, attempt: 1 })
  journal.flush()
  assert.equal(journalRows(db), 1)
  assert.equal(unfoldedRows(db), 1)
  // The table lags the journal until a fold: raw SQL alone does not see the batch yet…
  assert.equal(rawRows(db, id)[idx('a')].status, 'pending')
  // …but the history does at once: it is a view over the journal.
  assert.deepEqual(
    store.history(id).map((h) => [h.seq, plan.tasks[h.idx].id, h.status, h.at]),
    [[1, 'a', 'succeeded', '2026-01-01T00:00:01.000Z']],
  )
  // A reader through the store folds first; the fold keeps the row (moved out of the tail).
  const a = store.tasks(id)[idx('a')]
  assert.equal(unfoldedRows(db), 0)
  assert.equal(journalRows(db), 1)
  assert.deepEqual(
    [a.status, a.attempt, a.started_at, a.finished_at, a.output_tail, a.error_json],
    ['succeeded', 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 'a done', null],
  )
  assert.deepEqual(JSON.parse(a.changes_json ?? 'null'), [{ resource: 'file /x', result: 'changed' }])
  assert.equal(store.tasks(id)[idx('b')].status, 'running')
  assert.deepEqual(store.nodes(id), [{ name: 'n1', status: 'deploying' }])
  assert.deepEqual(
    db.prepare('SELECT seq, idx, status, started_at, at FROM engine_task_history WHERE deployment_id = ?').all(id),
    [
      {
        seq: 1,
        idx: idx('a'),
        status: 'succeeded',
        started_at: '2026-01-01T00:00:00.000Z',
        at: '2026-01-01T00:00:01.000Z',
      },
    ],
  )

  // Another connection folds while this journal keeps writing: each entry is applied once, whoever folds.
  journal.record({
    kind: 'task',
    index: idx('b'),
    status: 'failed',
    at: t0 + 2000,
    attempt: 1,
    outcome: { status: 'failed', error: { node: 'n1', task: 'b', message: 'exit 2', exitCode: 2 } },
  })
  journal.flush()
  const other = StateStore.open({ dataDir: dir }) // opening the store folds every journal
  t.after(() => other.close())
  assert.equal(unfoldedRows(other.db), 0)
  assert.equal(rawRows(other.db, id)[idx('b')].status, 'failed')
  journal.record({ kind: 'task', index: idx('c'), status: 'running', at: t0 + 3000, attempt: 1 })
  journal.flush()
  assert.equal(new EngineStore(other.db).fold(id), 1)
  assert.equal(new EngineStore(other.db).fold(id), 0, 'a second fold finds nothing')

  // The engine folds on its own (a timer, FOLD_INTERVAL_MS) with no reader asking.
  journal.record({
    kind: 'task',
    index: idx('c'),
    status: 'succeeded',
    at: t0 + 4000,
    attempt: 1,
    outcome: { status: 'succeeded' },
  })
  journal.flush()
  const deadline = Date.now() + 60_000 // a hang guard only: the loop ends as soon as the fold happened
  while (unfoldedRows(db) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.equal(rawRows(db, id)[idx('c')].status, 'succeeded', 'the timer folded the journal')

  // A run killed after a flush (no finish): the next open of the store folds its last batch.
  journal.record({ kind: 'node', node: 'n1', status: 'error', at: t0 + 5000 })
  journal.flush()
  const reopened = StateStore.open({ dataDir: dir })
  t.after(() => reopened.close())
  assert.deepEqual(reopened.db.prepare('SELECT status FROM engine_nodes WHERE deployment_id = ?').all(id), [
    { status: 'error' },
  ])
  assert.deepEqual(
    (
      reopened.db
        .prepare('SELECT seq, idx, status FROM engine_task_history WHERE deployment_id = ? ORDER BY seq')
        .all(id) as { seq: number; idx: number; status: string }[]
    ).map((h) => [h.seq, plan.tasks[h.idx].id, h.status]),
    [
      [1, 'a', 'succeeded'],
      [2, 'b', 'failed'],
      [3, 'c', 'succeeded'],
    ],
    'every ended attempt once, seqs contiguous',
  )
  journal.finish()
  assert.equal(journalRows(db), 5, 'each of the five flushes is one journal row, kept')
  const digests = db
    .prepare(`SELECT task, at FROM engine_task_digests WHERE environment = 'journal-env' ORDER BY task`)
    .all()
  assert.deepEqual(digests, [
    { task: 'a', at: '2026-01-01T00:00:01.000Z' },
    { task: 'c', at: '2026-01-01T00:00:04.000Z' },
  ])
})

test('migration 0104 on a store the engine left before it: the folded history and an unfolded batch read as one history', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-engine-journal-0104-'))
  const state = StateStore.open({ dataDir: dir })
  t.after(() => {
    state.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const db = state.db
  applyMigrations(
    db,
    ENGINE_MIGRATIONS.filter((m) => m.id < '0104'),
  )
  // What a killed engine left before 0104: a's end folded into engine_task_history (its journal row deleted by that
  // fold), b's start and failure still in engine_journal.
  const t0 = Date.parse('2026-01-01T00:00:00Z')
  const error = { node: 'n1', task: 'b', message: 'exit 3', exitCode: 3, tail: ['line 1', 'line "2"'] }
  db.prepare(
    `INSERT INTO engine_deployments (id, environment, mode, force, status, reason, stop_requested, pid, plan_json,
       created_at) VALUES (1, 'old-env', 'deploy', 0, 'running', NULL, 0, NULL, '{}', '2026-01-01T00:00:00.000Z')`,
  ).run()
  for (const [idx, task] of [
    [0, 'a'],
    [1, 'b'],
  ] as const)
    db.prepare(
      `INSERT INTO engine_tasks (deployment_id, idx, key, node, task, status, attempt) VALUES (1, ?, ?, 'n1', ?, ?, 1)`,
    ).run(idx, `n1/${task}`, task, idx === 0 ? 'succeeded' : 'pending')
  db.prepare(`INSERT INTO engine_nodes (deployment_id, node, pos, status) VALUES (1, 'n1', 0, 'deploying')`).run()
  db.prepare(
    `INSERT INTO engine_task_history (deployment_id, seq, idx, status, attempt, started_at, at, reason)
     VALUES (1, 1, 0, 'succeeded', 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', NULL)`,
  ).run()
  const batch = [
    [1, 'running', t0 + 1000, 1],
    [1, 'failed', t0 + 2345, 1, 2, t0 + 1000, 'attempt 1 failed', error, 'line 1\nline "2"', null],
  ]
  db.prepare('INSERT INTO engine_journal (deployment_id, seq, batch) VALUES (1, 1, ?)').run(JSON.stringify(batch))

  const store = new EngineStore(db) // applies 0104
  assert.deepEqual(
    db
      .prepare(
        `SELECT seq, idx, status, attempt, started_at, at, reason, error_json, output_tail, changes_json
           FROM engine_task_history WHERE deployment_id = 1 ORDER BY seq`,
      )
      .all(),
    [
      {
        seq: 1,
        idx: 0,
        status: 'succeeded',
        attempt: 1,
        started_at: '2026-01-01T00:00:00.000Z',
        at: '2026-01-01T00:00:01.000Z',
        reason: null,
        error_json: null,
        output_tail: null,
        changes_json: null,
      },
      {
        seq: 2,
        idx: 1,
        status: 'failed',
        attempt: 1,
        started_at: '2026-01-01T00:00:01.000Z',
        at: '2026-01-01T00:00:02.345Z',
        reason: 'attempt 1 failed',
        error_json: JSON.stringify(error),
        output_tail: 'line 1\nline "2"',
        changes_json: null,
      },
    ],
  )
  // The unfolded batch folds into the task row; the next history seq follows both sources.
  const b = store.tasks(1)[1]
  assert.deepEqual(
    [b.status, b.finished_at, b.error_json],
    ['failed', '2026-01-01T00:00:02.345Z', JSON.stringify(error)],
  )
  assert.equal(store.nextSeq(1), 3)
  store.appendHistory(1, [{ idx: 1, status: 'pending', attempt: 1, reason: 'interrupted: a note' }])
  assert.deepEqual(
    store.history(1).map((h) => [h.seq, h.idx, h.status]),
    [
      [1, 0, 'succeeded'],
      [2, 1, 'failed'],
      [3, 1, 'pending'],
    ],
  )
  // A new run of it journals after them.
  const journal = store.journal(1, 'old-env', { nodes: ['n1'], limiters: [], faultTolerance: [], tasks: [] })
  journal.record({ kind: 'task', index: 1, status: 'skipped', at: t0 + 9000, reason: 'test' })
  journal.finish()
  assert.deepEqual(
    store.history(1).map((h) => h.seq),
    [1, 2, 3, 4],
  )
})
