/**
 * The state store's PostgreSQL driver (`DATABASE_URL=postgresql://…`): the synchronous driver interface of
 * driver.ts over libpq's blocking calls (the `libpq` package, built from source against Debian's libpq-dev — no
 * downloaded binaries). One connection per store; every call blocks the event loop for one round trip, which on a
 * local socket is well under a millisecond — the same trade the SQLite driver makes.
 *
 * What it translates from the store's portable SQL:
 *   - `?` placeholders → `$1, $2, …` (quoted strings, identifiers and comments are left alone);
 *   - SQLite's two-argument scalar `MIN(a, b)` / `MAX(a, b)` → `LEAST` / `GREATEST`;
 *   - `transaction(fn).immediate()` (BEGIN IMMEDIATE: one writer at a time) → BEGIN plus a transaction-scoped
 *     advisory lock that every immediate transaction takes, so concurrent writers queue as they do on SQLite;
 *   - nested transactions → savepoints, as better-sqlite3 does.
 * Results come back as SQLite's would: integers and reals as numbers (BIGINT too — ids and sizes here stay far
 * below 2^53), NULL as null, everything else as text.
 */
import { createRequire } from 'node:module'
import { redactUrl, type Database, type RunResult, type Statement, type Transaction } from './driver.js'

/** The part of the `libpq` package's PQ object used here (it ships no types). */
interface PQ {
  connectSync(conninfo: string): void
  exec(sql: string): void
  execParams(sql: string, params: (string | null)[]): void
  resultStatus(): string
  resultErrorMessage(): string
  resultErrorFields(): Record<string, string> | undefined
  errorMessage(): string
  ntuples(): number
  nfields(): number
  fname(i: number): string
  ftype(i: number): number
  getvalue(row: number, col: number): string
  getisnull(row: number, col: number): boolean
  cmdTuples(): string
  finish(): void
}

const require = createRequire(import.meta.url)

/**
 * Finished connections kept reachable for a moment: libpq's finish() closes its libuv poll handle, whose memory
 * lives in the connection object; if the object were garbage-collected before libuv runs the close (in the loop's
 * close phase), libuv would touch freed memory and abort the process.
 */
const closing = new Set<unknown>()

/** Any one constant: the lock every immediate transaction holds until it ends. */
const WRITER_LOCK = 74_032_611

export class PostgresError extends Error {
  constructor(
    message: string,
    /** SQLSTATE, e.g. 23505 for a unique violation. */
    readonly code?: string,
  ) {
    super(message)
    this.name = 'PostgresError'
  }
}

// Type OIDs parsed to numbers: int2, int4, int8, oid, float4, float8, numeric.
const NUMERIC_TYPES = new Set([21, 23, 20, 26, 700, 701, 1700])
const BOOL = 16

/** `?` → `$n` outside quotes and comments; SQLite's scalar MIN/MAX of two values → LEAST/GREATEST. */
export function translateSql(sql: string): string {
  let out = ''
  let n = 0
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1)
      const stop = end < 0 ? sql.length : end + 1
      out += sql.slice(i, stop)
      i = stop - 1
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i)
      const stop = end < 0 ? sql.length : end
      out += sql.slice(i, stop)
      i = stop - 1
    } else if (c === '?') {
      out += `$${++n}`
    } else {
      out += c
    }
  }
  return out.replace(
    /\b(MIN|MAX)\(([^(),]+),([^(),]+)\)/gi,
    (_m, fn: string, a: string, b: string) => `${fn.toUpperCase() === 'MIN' ? 'LEAST' : 'GREATEST'}(${a},${b})`,
  )
}

function param(v: unknown, sql: string, i: number): string | null {
  if (v === null || v === undefined) return null
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'bigint') return String(v)
  if (typeof v === 'boolean') return v ? '1' : '0'
  throw new TypeError(`parameter ${i + 1} of "${sql.slice(0, 80)}" is a ${typeof v}; expected text, a number or null`)
}

export class PostgresDatabase implements Database {
  private readonly pq: PQ
  private depth = 0
  private closed = false

  constructor(readonly url: string) {
    const Libpq = require('libpq') as new () => PQ
    this.pq = new Libpq()
    try {
      this.pq.connectSync(url)
    } catch (e) {
      throw new PostgresError(
        `cannot connect to PostgreSQL at ${redactUrl(url)} (DATABASE_URL): ${String((e as Error).message || this.pq.errorMessage()).trim()}`,
      )
    }
    // NOTICEs (e.g. "relation already exists, skipping") would be printed on stderr by libpq.
    this.query('SET client_min_messages = warning', [])
  }

  /** Runs one already-translated statement; rows as objects keyed by column name. */
  query(sql: string, params: unknown[] | 'script'): { rows: Record<string, unknown>[]; changes: number } {
    if (this.closed) throw new PostgresError('the PostgreSQL connection is closed')
    // A script (exec) goes through the simple protocol, which runs several statements; the last result is read.
    if (params === 'script') this.pq.exec(sql)
    else
      this.pq.execParams(
        sql,
        params.map((v, i) => param(v, sql, i)),
      )
    const status = this.pq.resultStatus()
    if (status !== 'PGRES_TUPLES_OK' && status !== 'PGRES_COMMAND_OK' && status !== 'PGRES_EMPTY_QUERY') {
      const fields = this.pq.resultErrorFields() ?? {}
      const message = (this.pq.resultErrorMessage() || this.pq.errorMessage()).trim()
      throw new PostgresError(`PostgreSQL: ${message} (in: ${sql.replace(/\s+/g, ' ').slice(0, 160)})`, fields.sqlState)
    }
    const rows: Record<string, unknown>[] = []
    const nf = this.pq.nfields()
    if (nf > 0) {
      const names: string[] = []
      const types: number[] = []
      for (let f = 0; f < nf; f++) {
        names.push(this.pq.fname(f))
        types.push(this.pq.ftype(f))
      }
      const nt = this.pq.ntuples()
      for (let r = 0; r < nt; r++) {
        const row: Record<string, unknown> = {}
        for (let f = 0; f < nf; f++) {
          if (this.pq.getisnull(r, f)) {
            row[names[f]] = null
            continue
          }
          const text = this.pq.getvalue(r, f)
          row[names[f]] = NUMERIC_TYPES.has(types[f]) ? Number(text) : types[f] === BOOL ? text === 't' : text
        }
        rows.push(row)
      }
    }
    return { rows, changes: Number(this.pq.cmdTuples()) || 0 }
  }

  // better-sqlite3's own signature (`{}` included), so its Database is this interface as it is.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  prepare<P extends unknown[] | {} = unknown[], R = unknown>(
    source: string,
  ): P extends unknown[] ? Statement<P, R> : Statement<[P], R> {
    const sql = translateSql(source)
    const statement: Statement<unknown[], R> = {
      run: (...params: unknown[]): RunResult => ({ changes: this.query(sql, params).changes, lastInsertRowid: 0 }),
      get: (...params: unknown[]) => this.query(sql, params).rows[0] as R | undefined,
      all: (...params: unknown[]) => this.query(sql, params).rows as R[],
    }
    return statement as P extends unknown[] ? Statement<P, R> : Statement<[P], R>
  }

  exec(source: string): this {
    this.query(translateSql(source), 'script')
    return this
  }

  pragma(source: string): never {
    throw new PostgresError(`PRAGMA ${source} is SQLite's; the state store is on PostgreSQL (DATABASE_URL)`)
  }

  transaction<F extends (...args: any[]) => unknown>(fn: F): Transaction<F> {
    const run = (immediate: boolean, args: unknown[]): ReturnType<F> => {
      const savepoint = this.depth > 0 ? `xenstack_sp${this.depth}` : undefined
      this.query(savepoint ? `SAVEPOINT ${savepoint}` : 'BEGIN', [])
      if (!savepoint && immediate) this.query(`SELECT pg_advisory_xact_lock(${WRITER_LOCK})`, [])
      this.depth++
      try {
        const result = fn(...args) as ReturnType<F>
        if (result instanceof Promise) throw new TypeError('a transaction function must not be async')
        this.depth--
        this.query(savepoint ? `RELEASE SAVEPOINT ${savepoint}` : 'COMMIT', [])
        return result
      } catch (e) {
        this.depth--
        try {
          if (savepoint) {
            this.query(`ROLLBACK TO SAVEPOINT ${savepoint}`, [])
            this.query(`RELEASE SAVEPOINT ${savepoint}`, [])
          } else this.query('ROLLBACK', [])
        } catch {
          // The connection is gone; the original error says more.
        }
        throw e
      }
    }
    return Object.assign((...args: unknown[]) => run(false, args), {
      immediate: (...args: unknown[]) => run(true, args),
    }) as unknown as Transaction<F>
  }

  close(): this {
    if (!this.closed) {
      this.closed = true
      const pq = this.pq
      pq.finish()
      closing.add(pq)
      setTimeout(() => closing.delete(pq), 100).unref()
    }
    return this
  }
}
