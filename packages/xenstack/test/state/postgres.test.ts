// The state store's migrations are portable: the same statements run on a real PostgreSQL (a throw-away
// cluster in a temp directory, unix socket only), in order, and produce the same tables as on SQLite.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isRoot, requirePrerequisite } from '@xenstack/testkit'
import { MIGRATIONS } from '../../src/state/migrations.js'
import { StateStore } from '../../src/state/store.js'

function pgBin(): string | undefined {
  const base = '/usr/lib/postgresql'
  if (!existsSync(base)) return undefined
  const v = readdirSync(base).sort((a, b) => Number(b) - Number(a))[0]
  return v && existsSync(join(base, v, 'bin', 'initdb')) ? join(base, v, 'bin') : undefined
}

test('every state-store migration runs unchanged on PostgreSQL and gives the same tables', (t) => {
  const bin = pgBin()
  if (!requirePrerequisite(t, 'postgresql (initdb, postgres, psql)', () => !!bin && existsSync('/usr/bin/psql'))) return
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-pg-'))
  const data = join(dir, 'data')
  // PostgreSQL refuses to run as root: run it as the postgres user then.
  const asPg = isRoot() ? ['runuser', '-u', 'postgres', '--'] : []
  if (isRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    chownSync(dir, uid, gid)
  }
  const run = (cmd: string, args: string[]) => {
    const full = [...asPg, cmd, ...args]
    const r = spawnSync(full[0], full.slice(1), { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`)
    return r.stdout
  }
  const port = String(20000 + Math.floor(Math.random() * 20000))
  let started = false
  try {
    run(join(bin!, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'])
    run(join(bin!, 'pg_ctl'), [
      '-D',
      data,
      '-w',
      '-l',
      join(dir, 'log'),
      '-o',
      `-c listen_addresses='' -k ${dir} -p ${port} -c fsync=off`,
      'start',
    ])
    started = true
    const psql = (sql: string) =>
      run('/usr/bin/psql', [
        '-h',
        dir,
        '-p',
        port,
        '-U',
        'postgres',
        '-d',
        'postgres',
        '-v',
        'ON_ERROR_STOP=1',
        '-At',
        '-c',
        sql,
      ])
    psql('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)')
    for (const m of [...MIGRATIONS].sort((a, b) => a.id.localeCompare(b.id))) {
      for (const s of m.statements) psql(s)
      psql(`INSERT INTO schema_migrations (id, applied_at) VALUES ('${m.id}', '${new Date().toISOString()}')`)
    }
    const pgTables = psql(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    )
      .trim()
      .split('\n')
    const pgColumns = psql(
      "SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
    )
      .trim()
      .split('\n')

    const home = mkdtempSync(join(tmpdir(), 'xenstack-pg-sqlite-'))
    try {
      // The SQLite side of the comparison, in both of the runner's passes.
      const store = StateStore.open({ dataDir: home, databaseUrl: '' })
      const tables = (
        store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
          name: string
        }[]
      ).map((r) => r.name)
      const columns = tables
        .flatMap((tb) =>
          (store.db.prepare(`PRAGMA table_info(${tb})`).all() as { name: string }[]).map((c) => `${tb}.${c.name}`),
        )
        .sort()
      store.close()
      assert.deepEqual(pgTables, tables)
      assert.deepEqual(pgColumns, columns)
    } finally {
      rmSync(home, { recursive: true, force: true })
    }
  } finally {
    if (started) {
      const stop = [...asPg, join(bin!, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop']
      spawnSync(stop[0], stop.slice(1))
    }
    rmSync(dir, { recursive: true, force: true })
  }
})
