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
