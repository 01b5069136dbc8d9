// The state store's two backends for tests: SQLite (a file in a scratch data dir) and PostgreSQL (a database of
// its own per test file, created on the server scripts/setup.sh starts, dropped when the file's tests end).
//
// PostgreSQL is reached at $XENSTACK_TEST_DATABASE_URL, default postgresql://xenstack:xenstack@127.0.0.1:5432/xenstack
// (the role setup.sh creates, with CREATEDB). Outside CI a missing server skips the PostgreSQL half; in CI it fails.
import { after, type TestContext } from 'node:test'
import { randomBytes } from 'node:crypto'
import { requirePrerequisite } from '@xenstack/testkit'
import { PostgresDatabase } from '../../src/state/postgres.js'
import { StateStore, type OpenOptions } from '../../src/state/store.js'

export const ADMIN_URL =
  process.env.XENSTACK_TEST_DATABASE_URL ?? 'postgresql://xenstack:xenstack@127.0.0.1:5432/xenstack'

export type BackendName = 'sqlite' | 'postgresql'
export const BACKENDS: BackendName[] = ['sqlite', 'postgresql']

let reachable: boolean | undefined
function postgresReachable(): boolean {
  if (reachable === undefined) {
    try {
      new PostgresDatabase(ADMIN_URL).close()
      reachable = true
    } catch {
      reachable = false
    }
  }
  return reachable
}

const created: string[] = []
after(() => {
  if (!created.length) return
  const admin = new PostgresDatabase(ADMIN_URL)
  try {
    for (const db of created) admin.exec(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
  } finally {
    admin.close()
  }
})

/** A fresh, empty PostgreSQL database for this test file; its URL. */
export function freshPostgresDatabase(): string {
  const name = `xenstack_t_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = new PostgresDatabase(ADMIN_URL)
  try {
    admin.exec(`CREATE DATABASE ${name}`)
  } finally {
    admin.close()
  }
  created.push(name)
  const u = new URL(ADMIN_URL)
  u.pathname = `/${name}`
  return u.toString()
}

/**
 * The `databaseUrl` to open a store on `backend` with (`''` = SQLite in the data dir), or undefined when the
 * backend is missing outside CI (the test is then marked skipped).
 */
export function databaseUrlFor(t: TestContext, backend: BackendName): string | undefined {
  if (backend === 'sqlite') return ''
  if (!requirePrerequisite(t, `PostgreSQL at ${ADMIN_URL.replace(/:[^:@/]*@/, ':***@')}`, postgresReachable))
    return undefined
  return freshPostgresDatabase()
}

/** Opens a store on `backend` in `dataDir`; undefined when the backend is missing outside CI. */
export function openStore(
  t: TestContext,
  backend: BackendName,
  dataDir: string,
  options: Omit<OpenOptions, 'dataDir' | 'databaseUrl'> = {},
): StateStore | undefined {
  const databaseUrl = databaseUrlFor(t, backend)
  if (databaseUrl === undefined) return undefined
  return StateStore.open({ ...options, dataDir, databaseUrl })
}
