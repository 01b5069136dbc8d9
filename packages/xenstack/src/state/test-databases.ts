/**
 * The test suite's PostgreSQL pass (scripts/run-tests.mjs runs every store-touching test file a second time on
 * PostgreSQL). A test opens stores by data directory — in its own process and in the CLI, server and lab
 * processes it spawns — and expects one data directory to be one state. So in that pass a store opened without an
 * explicit database (no `databaseUrl` option, no `DATABASE_URL`) lands in a PostgreSQL database of its data
 * directory's own, whoever opens it: the name is the run's prefix plus a hash of the directory's real path, the
 * first process to open it creates it.
 *
 * Variables (set by the runner, never by users):
 *   XENSTACK_TEST_POSTGRES_URL     the server, as a URL whose role may create databases;
 *   XENSTACK_TEST_POSTGRES_PREFIX  the run's database name prefix (`xenstack_p_<runner pid>_`);
 *   XENSTACK_TEST_STORE_LOG        (SQLite pass) a file where each such open appends its test file
 *                                  ($XENSTACK_TEST_FILE, set for a test file and its children by testkit's
 *                                  test-file preload) — the runner's rule for which files run twice.
 *
 * A database's comment is its data directory: the runner drops the databases whose directory is gone while the
 * pass runs (tests remove their scratch dirs when they end), and all of the run's at its end.
 */
import { createHash } from 'node:crypto'
import { appendFileSync, existsSync, realpathSync } from 'node:fs'
import { PostgresDatabase, PostgresError } from './postgres.js'

export const TEST_POSTGRES_URL_ENV = 'XENSTACK_TEST_POSTGRES_URL'
export const TEST_POSTGRES_PREFIX_ENV = 'XENSTACK_TEST_POSTGRES_PREFIX'
export const TEST_STORE_LOG_ENV = 'XENSTACK_TEST_STORE_LOG'
export const TEST_FILE_ENV = 'XENSTACK_TEST_FILE'

const PREFIX = /^[a-z][a-z0-9_]{0,39}$/

function checkPrefix(prefix: string): string {
  if (!PREFIX.test(prefix)) {
    throw new PostgresError(
      `${TEST_POSTGRES_PREFIX_ENV} "${prefix}" is not a database name prefix: expected [a-z][a-z0-9_]{0,39}`,
    )
  }
  return prefix
}

/** The run's database for a data directory (lower-case letters, digits and _ only: no quoting needed). */
export function testDatabaseName(prefix: string, dataDir: string): string {
  const dir = existsSync(dataDir) ? realpathSync(dataDir) : dataDir
  return checkPrefix(prefix) + createHash('sha256').update(dir).digest('hex').slice(0, 20)
}

const withDatabase = (url: string, name: string): string => {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

const DUPLICATE_DATABASE = '42P04'
const UNIQUE_VIOLATION = '23505' // two CREATE DATABASE of one name at once: the loser may see pg_database's index

/**
 * In the PostgreSQL pass: the URL of the data directory's database, created when missing; otherwise undefined.
 */
export function testDatabaseFor(dataDir: string): string | undefined {
  const admin = process.env[TEST_POSTGRES_URL_ENV]
  const prefix = process.env[TEST_POSTGRES_PREFIX_ENV]
  if (!admin || !prefix) return undefined
  const name = testDatabaseName(prefix, dataDir)
  const url = withDatabase(admin, name)
  try {
    new PostgresDatabase(url).close()
    return url
  } catch (e) {
    if (!/does not exist/.test((e as Error).message)) throw e
  }
  const db = new PostgresDatabase(admin)
  try {
    db.exec(`CREATE DATABASE ${name}`)
    // Test data: a commit need not wait for the disk.
    db.exec(`ALTER DATABASE ${name} SET synchronous_commit = off`)
    db.exec(`COMMENT ON DATABASE ${name} IS '${realpathSync(dataDir).replaceAll("'", "''")}'`)
  } catch (e) {
    const code = (e as PostgresError).code
    if (code !== DUPLICATE_DATABASE && code !== UNIQUE_VIOLATION) throw e
  } finally {
    db.close()
  }
  return url
}

/** In the SQLite pass: notes that the running test file opened a store on the default database. */
export function recordDefaultStoreOpen(): void {
  const log = process.env[TEST_STORE_LOG_ENV]
  const file = process.env[TEST_FILE_ENV]
  if (log && file) appendFileSync(log, `${file}\n`)
}

/**
 * Drops the run's databases: with `onlyOrphaned`, those whose data directory is gone and nobody is connected to
 * (a busy one is left for the next sweep); otherwise all (connections closed). Returns the names dropped.
 */
export function dropTestDatabases(adminUrl: string, prefix: string, options: { onlyOrphaned: boolean }): string[] {
  const db = new PostgresDatabase(adminUrl)
  const dropped: string[] = []
  try {
    const rows = db
      .prepare(
        "SELECT datname, shobj_description(oid, 'pg_database') AS dir FROM pg_database WHERE starts_with(datname, ?)",
      )
      .all(checkPrefix(prefix)) as { datname: string; dir: string | null }[]
    for (const { datname, dir } of rows) {
      if (options.onlyOrphaned && (dir === null || existsSync(dir))) continue
      try {
        db.exec(`DROP DATABASE IF EXISTS ${datname}${options.onlyOrphaned ? '' : ' WITH (FORCE)'}`)
        dropped.push(datname)
      } catch {
        // in use (the sweep) or being dropped by another sweep: the next one, or the end of the pass
      }
    }
  } finally {
    db.close()
  }
  return dropped
}
