// The runner's PostgreSQL pass (scripts/run-tests.mjs, src/state/test-databases.ts): a data dir is one PostgreSQL
// database for the test process and every CLI process it starts, named by the run's prefix and commented with the
// dir; the SQLite pass logs which test file opened a default store; the sweep drops a database once its dir is gone.
// Runs on PostgreSQL explicitly (its own prefix, not the runner's), so it opens no default store and runs once.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync, realpathSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchDirs } from '@xenstack/testkit'
import { PostgresDatabase } from '../../src/state/postgres.js'
import { StateStore } from '../../src/state/store.js'
import {
  dropTestDatabases,
  testDatabaseName,
  TEST_FILE_ENV,
  TEST_POSTGRES_PREFIX_ENV,
  TEST_POSTGRES_URL_ENV,
  TEST_STORE_LOG_ENV,
} from '../../src/state/test-databases.js'
import { ADMIN_URL, databaseUrlFor } from './databases.js'

const bin = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
const tmp = scratchDirs()
const PREFIX = `xenstack_p_${process.pid}_`

/** The environment without DATABASE_URL and the runner's own pass variables (this file sets its own). */
function baseEnv(from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env = { ...from }
  for (const k of ['DATABASE_URL', TEST_POSTGRES_URL_ENV, TEST_POSTGRES_PREFIX_ENV, TEST_STORE_LOG_ENV]) delete env[k]
  return env
}

/** Runs `fn` with only these pass variables set, restoring the environment after. */
function withEnv<T>(vars: Record<string, string>, fn: () => T): T {
  const saved = { ...process.env }
  for (const k of Object.keys(process.env)) delete process.env[k]
  Object.assign(process.env, baseEnv(saved), vars)
  try {
    return fn()
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
    Object.assign(process.env, saved)
  }
}

function cli(env: Record<string, string>, ...args: string[]) {
  const childEnv: NodeJS.ProcessEnv = { ...baseEnv(), ...env, XENSTACK_SHIPPED_PLUGINS: 'none' }
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: childEnv })
  assert.equal(r.status, 0, `xenstack ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

const databaseComment = (name: string): string | undefined => {
  const admin = new PostgresDatabase(ADMIN_URL)
  try {
    const row = admin
      .prepare("SELECT shobj_description(oid, 'pg_database') AS dir FROM pg_database WHERE datname = ?")
      .get(name) as { dir: string | null } | undefined
    return row ? (row.dir ?? '') : undefined
  } finally {
    admin.close()
  }
}

function needsPostgres(t: TestContext): boolean {
  // databaseUrlFor checks the server (skip outside CI, fail in CI); the database it makes is dropped after the file.
  return databaseUrlFor(t, 'postgresql') !== undefined
}

test('PostgreSQL pass: the test process and the CLI it starts share one database per data dir; the sweep drops it once the dir is gone', (t) => {
  if (!needsPostgres(t)) return
  const pass = { [TEST_POSTGRES_URL_ENV]: ADMIN_URL, [TEST_POSTGRES_PREFIX_ENV]: PREFIX }
  t.after(() => dropTestDatabases(ADMIN_URL, PREFIX, { onlyOrphaned: false }))
  const home = tmp('xenstack-testdb-')
  const other = tmp('xenstack-testdb-other-')

  // The CLI (a child process) creates an environment in home's database.
  cli(pass, 'env', 'create', 'from-cli', '--data-dir', home, '--json')
  const name = testDatabaseName(PREFIX, home)
  assert.equal(databaseComment(name), realpathSync(home), 'the database is commented with its data dir')

  // This process opens the same data dir: the same database, on PostgreSQL; another dir is another database.
  withEnv(pass, () => {
    const s = StateStore.open({ dataDir: home })
    try {
      assert.equal(s.backend, 'postgresql')
      assert.match(s.location, new RegExp(`/${name}$`))
      assert.deepEqual(
        s.environments.list().map((e) => e.name),
        ['from-cli'],
      )
    } finally {
      s.close()
    }
    const o = StateStore.open({ dataDir: other })
    try {
      assert.deepEqual(o.environments.list(), [])
    } finally {
      o.close()
    }
    // An explicit database (DATABASE_URL='' or a databaseUrl option) is kept: SQLite here.
    const sqlite = StateStore.open({ dataDir: other, databaseUrl: '' })
    assert.equal(sqlite.backend, 'sqlite')
    sqlite.close()
  })
  // And the CLI sees what it wrote, in a second process.
  const listed = JSON.parse(cli(pass, 'env', 'list', '--data-dir', home, '--json')) as { name: string }[]
  assert.deepEqual(
    listed.map((e) => e.name),
    ['from-cli'],
  )

  // The sweep keeps the databases whose dir is there, drops the one whose dir is gone.
  rmSync(home, { recursive: true, force: true })
  assert.deepEqual(dropTestDatabases(ADMIN_URL, PREFIX, { onlyOrphaned: true }), [name])
  assert.equal(databaseComment(name), undefined)
  assert.equal(databaseComment(testDatabaseName(PREFIX, other)), realpathSync(other))
})

test('SQLite pass: opening a default store logs the test file named by XENSTACK_TEST_FILE (in a CLI child too); an explicit database does not', () => {
  const log = join(tmp('xenstack-testdb-log-'), 'opens.log')
  const vars = { [TEST_STORE_LOG_ENV]: log, [TEST_FILE_ENV]: '/x/one.test.js' }
  const home = tmp('xenstack-testdb-sqlite-')
  withEnv(vars, () => {
    StateStore.open({ dataDir: home }).close()
    StateStore.open({ dataDir: home, databaseUrl: '' }).close()
  })
  cli({ ...vars, [TEST_FILE_ENV]: '/x/two.test.js' }, 'env', 'list', '--data-dir', home, '--json')
  assert.deepEqual(readFileSync(log, 'utf8').split('\n').filter(Boolean), ['/x/one.test.js', '/x/two.test.js'])
})
