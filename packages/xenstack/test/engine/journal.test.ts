import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StateStore } from '../../src/state/store.js'
import { openSqlite, type Database } from '../../src/state/driver.js'
import { buildExecutionPlan } from '../../src/engine/graph.js'
import { EngineStore, type TaskRow } from '../../src/engine/store.js'

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
  // Another connection (as another process's) sees the same.
  const other = StateStore.open({ dataDir: dir })
  t.after(() => other.close())
  assert.equal(rawRows(other.db, id)[idx('a')].status, 'running')

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

test('the SQLite driver the journal commits through: WAL, synchronous NORMAL, checkpoints every 10,000 pages', (t) => {
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
  journal.record({ kind: 'task', index: 0, status: 'running', at: Date.now(), attempt: 1 })
  assert.equal(journal.pending, 1)
  journal.flush()
  assert.equal(journal.pending, 0)
  const other = openSqlite(join(dir, 'state.db'))
  try {
    const row = other.prepare('SELECT status FROM engine_tasks WHERE deployment_id = ? AND idx = 0').get(id)
    assert.deepEqual(row, { status: 'running' })
  } finally {
    other.close()
  }
})
