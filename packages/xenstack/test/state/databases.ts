// The state store's two backends for tests: SQLite (a file in a scratch data dir) and PostgreSQL (a database of
// its own per test file, created on the server scripts/setup.sh starts, dropped when the file's tests end).
//
// PostgreSQL is reached at $XENSTACK_TEST_DATABASE_URL, default postgresql://xenstack:xenstack@127.0.0.1:5432/xenstack
// (the role setup.sh creates, with CREATEDB). Outside CI a missing server skips the PostgreSQL half; in CI it fails.
import { after, type TestContext } from 'node:test'
import { randomBytes } from 'node:crypto'
import { cpSync, existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { requirePrerequisite } from '@xenstack/testkit'
import { PostgresDatabase } from '../../src/state/postgres.js'
import { StateStore, type OpenOptions } from '../../src/state/store.js'
import {
  TEST_POSTGRES_PREFIX_ENV,
  TEST_POSTGRES_URL_ENV,
  testDatabaseFor,
  testDatabaseName,
} from '../../src/state/test-databases.js'

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

/**
 * Drops databases; best effort (an autovacuum worker on a database just used can refuse FORCE for a moment:
 * retried, then left for the next run's sweep of databases whose test process is gone).
 */
async function dropDatabases(names: string[]): Promise<void> {
  const admin = new PostgresDatabase(ADMIN_URL)
  try {
    for (const db of names) {
      for (let attempt = 1; ; attempt++) {
        try {
          admin.exec(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
          break
        } catch (e) {
          if (attempt >= 10) {
            process.stderr.write(`test databases: could not drop ${db}: ${(e as Error).message}\n`)
            break
          }
          await new Promise((r) => setTimeout(r, 300))
        }
      }
    }
  } finally {
    admin.close()
  }
}

after(async () => {
  if (created.length) await dropDatabases(created)
})

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

let swept = false
/** Leftovers of test processes that are gone (killed before their after hook ran). */
function sweepLeftovers(admin: PostgresDatabase): void {
  if (swept) return
  swept = true
  const rows = admin.prepare("SELECT datname FROM pg_database WHERE datname LIKE 'xenstack_t_%'").all() as {
    datname: string
  }[]
  for (const { datname } of rows) {
    const pid = Number(/^xenstack_t_(\d+)_/.exec(datname)?.[1])
    if (pid && !alive(pid)) {
      try {
        admin.exec(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`)
      } catch {
        // another process is sweeping it, or it is busy: the next sweep
      }
    }
  }
}

/** A fresh, empty PostgreSQL database for this test file; its URL. */
export function freshPostgresDatabase(): string {
  const name = `xenstack_t_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = new PostgresDatabase(ADMIN_URL)
  try {
    sweepLeftovers(admin)
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

// ------------------------------------------------------------------------------------------------------------------
// The default store of a data dir (no databaseUrl): SQLite's state.db, or in the runner's PostgreSQL pass
// (scripts/run-tests.mjs pass 2) the data dir's own database. Tests that look at the stored state itself use these,
// so they assert the same thing on both backends.

/** The store's tables, sorted. */
export function tableNames(store: StateStore): string[] {
  const sql =
    store.backend === 'sqlite'
      ? "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
      : "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
  return (store.db.prepare(sql).all() as { name: string }[]).map((r) => r.name)
}

/** True in the runner's PostgreSQL pass: default stores are in PostgreSQL. */
export const postgresPass = (): boolean =>
  Boolean(process.env[TEST_POSTGRES_URL_ENV] && process.env[TEST_POSTGRES_PREFIX_ENV]) &&
  process.env.DATABASE_URL === undefined

/**
 * Everything the data dir's default state holds, as text — to assert that a secret is not stored in clear. SQLite:
 * the bytes of state.db and its WAL (free pages and old frames included). PostgreSQL: every row of every table.
 * The data dir's stores must be closed (SQLite then has its WAL checkpointed into state.db).
 */
export function storedStateText(dataDir: string): string {
  if (!postgresPass()) {
    const files = readdirSync(dataDir).filter((f) => /^state\.db(-wal)?$/.test(f))
    if (!files.includes('state.db')) throw new Error(`no state.db in ${dataDir}: nothing was stored there`)
    return files.map((f) => readFileSync(join(dataDir, f), 'latin1')).join('\n')
  }
  const db = new PostgresDatabase(testDatabaseFor(dataDir)!)
  try {
    const tables = db.prepare("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").all() as {
      tablename: string
    }[]
    if (!tables.some((t) => t.tablename === 'schema_migrations'))
      throw new Error(`the database of ${dataDir} has no tables: nothing was stored there`)
    return tables.map((t) => JSON.stringify(db.prepare(`SELECT * FROM "${t.tablename}"`).all())).join('\n')
  } finally {
    db.close()
  }
}

/**
 * Copies a data dir's default state (not its secret.key) to another data dir, as `cp state.db` does for SQLite; in
 * the PostgreSQL pass the target's database is made from the source's (CREATE DATABASE … TEMPLATE). The source's
 * stores must be closed; the target must have no state yet.
 */
export function copyState(from: string, to: string): void {
  if (!postgresPass()) {
    cpSync(join(from, 'state.db'), join(to, 'state.db'))
    return
  }
  if (!existsSync(to)) throw new Error(`copyState: ${to} does not exist`)
  const prefix = process.env[TEST_POSTGRES_PREFIX_ENV]!
  const source = testDatabaseName(prefix, from)
  const target = testDatabaseName(prefix, to)
  const admin = new PostgresDatabase(process.env[TEST_POSTGRES_URL_ENV]!)
  try {
    admin.exec(`CREATE DATABASE ${target} TEMPLATE ${source}`)
    admin.exec(`COMMENT ON DATABASE ${target} IS '${to.replaceAll("'", "''")}'`)
  } finally {
    admin.close()
  }
}
