/**
 * The state store's database driver: the small synchronous interface every repository, the deployment engine's
 * journal and the migrations are written against. It is the subset of better-sqlite3's API they use, so the
 * SQLite driver is better-sqlite3 itself and the PostgreSQL driver (postgres.ts, over libpq's synchronous calls)
 * implements the same shapes — one code path for both backends, and the store stays synchronous (its callers,
 * the scheduler's "write before acting" journal among them, rely on that).
 *
 * SQL is written once, in the portable dialect of migrations.ts with `?` placeholders; the PostgreSQL driver
 * translates what differs (placeholders, two-argument MIN/MAX, BEGIN IMMEDIATE's writer lock).
 */
import BetterSqlite3 from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'

export interface RunResult {
  changes: number
  lastInsertRowid: number | bigint
}

export interface Statement<P extends unknown[] = unknown[], R = unknown> {
  run(...params: P): RunResult
  get(...params: P): R | undefined
  all(...params: P): R[]
}

type ArgumentTypes<F> = F extends (...args: infer A) => unknown ? A : never

export interface Transaction<F extends (...args: any[]) => unknown> {
  /** Runs `fn` in a transaction (a savepoint when one is open already). */
  (...args: ArgumentTypes<F>): ReturnType<F>
  /** Same, taking the single-writer lock first (SQLite's BEGIN IMMEDIATE): concurrent writers queue. */
  immediate(...args: ArgumentTypes<F>): ReturnType<F>
}

export interface Database {
  // better-sqlite3's own signature (`{}` included), so its Database is this interface as it is.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  prepare<P extends unknown[] | {} = unknown[], R = unknown>(
    source: string,
  ): P extends unknown[] ? Statement<P, R> : Statement<[P], R>
  transaction<F extends (...args: any[]) => unknown>(fn: F): Transaction<F>
  /** Runs one or more statements without parameters (DDL). */
  exec(source: string): unknown
  /** SQLite only (the PostgreSQL driver refuses it, naming the pragma). */
  pragma(source: string, options?: { simple?: boolean }): unknown
  close(): unknown
}

export type Backend = 'sqlite' | 'postgresql'

/** Which backend a driver talks to (for the little SQL that cannot be portable, e.g. a view over JSON). */
export function dialectOf(db: Database): Backend {
  return db instanceof BetterSqlite3 ? 'sqlite' : 'postgresql'
}

/** SQLite in WAL mode with foreign keys on and a 10 s busy timeout (several processes share the file). */
export function openSqlite(file: string): Database {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  const db = new BetterSqlite3(file)
  db.pragma('journal_mode = WAL')
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 10000')
  // NORMAL in WAL: a commit is durable across a crash of the process (the WAL is in the kernel's page cache when
  // COMMIT returns; a restarted process, or any other, reads it), and only an OS crash or power cut can lose the
  // last commits — never corrupt the file. The engine's journal commits before every task it starts; FULL would
  // add an fsync to each of those commits.
  db.pragma('synchronous = NORMAL')
  // Checkpoint every 10,000 WAL pages (~40 MB) instead of SQLite's 1,000: a checkpoint copies the distinct pages
  // of the WAL into the database and fsyncs twice, all on the committing thread. The engine's journal commits a
  // few thousand small batches a minute on a large deployment, rewriting the same task pages; a longer WAL copies
  // each page once per checkpoint rather than ten times (bench/engine.mjs: ~10 % less CPU, ~15 % less wall in the
  // journal run). journal_size_limit truncates the WAL back to 4 MB after a checkpoint so the file does not stay
  // at its high-water mark.
  db.pragma('wal_autocheckpoint = 10000')
  db.pragma('journal_size_limit = 4194304')
  return db
}

/** `postgresql://user:***@host/db`: a connection URL safe to print. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@')
  }
}
