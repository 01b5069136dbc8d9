#!/usr/bin/env node
// Runs every package's compiled tests (packages/*/dist/test/**/*.test.js) with Node's built-in runner, in two passes:
//
//   pass 1, SQLite      every selected file; the state store is SQLite in each test's data dir.
//   pass 2, PostgreSQL  the files that opened a state store on its default database in pass 1 (in the test's own
//                       process or in any CLI/server/lab process it started) run again, and every such store lands in
//                       a PostgreSQL database of its data dir's own (packages/xenstack/src/state/test-databases.ts),
//                       created on first open, dropped when the data dir is gone and at the end of the pass.
//
// The rule for pass 2 is mechanical: testkit's preload (dist/src/test-file.js, given to every Node process of the run
// through NODE_OPTIONS) names the test file in XENSTACK_TEST_FILE, inherited by its child processes, and the store
// writes that name to a log when it opens its default database. Files that never open one (or only open stores on an
// explicit backend, as the state and server tests do for both) run once.
//
// Usage: node scripts/run-tests.mjs [substring ...]   — only test files whose path contains a substring.
// Environment: XENSTACK_TEST_CONCURRENCY (default 2 files at once), XENSTACK_TEST_TIMEOUT_MS (default 600000 per test),
// XENSTACK_TEST_BACKENDS (both | sqlite | postgresql; postgresql alone runs every selected file on PostgreSQL),
// XENSTACK_TEST_DATABASE_URL (the PostgreSQL server and a role that may create databases; default below).
// Outside CI an unreachable PostgreSQL skips pass 2 with a notice; in CI (CI=true) it fails the run.
import { spawn } from 'node:child_process'
import { readdirSync, statSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = join(fileURLToPath(import.meta.url), '..', '..')
const filters = process.argv.slice(2)
const inCI = /^(1|true|yes)$/i.test(process.env.CI ?? '')
const ADMIN_URL = process.env.XENSTACK_TEST_DATABASE_URL ?? 'postgresql://xenstack:xenstack@127.0.0.1:5432/xenstack'
const shownUrl = ADMIN_URL.replace(/:[^:@/]*@/, ':***@')

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p, out)
    else if (name.endsWith('.test.js')) out.push(p)
  }
  return out
}

const files = []
for (const pkg of readdirSync(join(root, 'packages')).sort()) {
  const dir = join(root, 'packages', pkg, 'dist', 'test')
  if (existsSync(dir)) walk(dir, files)
}
const selected = files
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort()

if (selected.length === 0) {
  console.error(
    `run-tests: no compiled test files found${filters.length ? ` matching ${filters.join(', ')}` : ''}; run "npm run build" first`,
  )
  process.exit(1)
}

const backends = process.env.XENSTACK_TEST_BACKENDS ?? 'both'
if (!['both', 'sqlite', 'postgresql'].includes(backends)) {
  console.error(`run-tests: XENSTACK_TEST_BACKENDS="${backends}": expected both, sqlite or postgresql`)
  process.exit(1)
}

const concurrency = process.env.XENSTACK_TEST_CONCURRENCY ?? '2'
const timeout = process.env.XENSTACK_TEST_TIMEOUT_MS ?? '600000'
const preload = join(root, 'packages', 'testkit', 'dist', 'src', 'test-file.js')

/** The environment every test process of a pass starts from: no DATABASE_URL of the caller's, the preload. */
function passEnv(extra) {
  const env = { ...process.env, ...extra }
  delete env.DATABASE_URL
  env.NODE_OPTIONS = [process.env.NODE_OPTIONS, `--import=${pathToFileURL(preload).href}`].filter(Boolean).join(' ')
  return env
}

let current
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    current?.kill(signal)
  })
}

/** Runs one pass; resolves to its exit code and duration. */
function runPass(label, passFiles, env, listFiles = false) {
  console.log(`\nrun-tests: ${label}: ${passFiles.length} file(s)`)
  if (listFiles) console.log(passFiles.map((f) => `run-tests:   ${f.replace('/dist/test/', ': ')}`).join('\n'))
  const started = Date.now()
  return new Promise((resolve) => {
    current = spawn(
      process.execPath,
      ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${timeout}`, ...passFiles],
      { cwd: root, stdio: 'inherit', env },
    )
    current.on('exit', (code, signal) => {
      current = undefined
      resolve({ code: signal ? 1 : (code ?? 1), seconds: (Date.now() - started) / 1000 })
    })
  })
}

const results = []
const report = (label, r) =>
  results.push(`${label}: ${r.code === 0 ? 'passed' : `FAILED (exit ${r.code})`} in ${r.seconds.toFixed(0)} s`)

let pgFiles = selected
if (backends !== 'postgresql') {
  const logDir = mkdtempSync(join(tmpdir(), 'xenstack-test-stores-'))
  const log = join(logDir, 'store-opens.log')
  const label = `pass 1/${backends === 'both' ? 2 : 1} (SQLite)`
  report(label, await runPass(label, selected, passEnv({ XENSTACK_TEST_STORE_LOG: log })))
  const opened = new Set(
    existsSync(log)
      ? readFileSync(log, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((f) => relative(root, f))
      : [],
  )
  rmSync(logDir, { recursive: true, force: true })
  pgFiles = selected.filter((f) => opened.has(f))
}

if (backends !== 'sqlite') {
  const label = `pass ${backends === 'both' ? '2/2' : '1/1'} (PostgreSQL at ${shownUrl})`
  const { PostgresDatabase } = await import(pathToFileURL(join(root, 'packages/xenstack/dist/src/state/postgres.js')))
  const { dropTestDatabases } = await import(
    pathToFileURL(join(root, 'packages/xenstack/dist/src/state/test-databases.js'))
  )
  let admin
  try {
    admin = new PostgresDatabase(ADMIN_URL)
  } catch (e) {
    if (inCI) {
      report(label, { code: 1, seconds: 0 })
      console.error(`run-tests: ${label}: PostgreSQL is not reachable (${e.message}); run ./scripts/setup.sh`)
    } else {
      results.push(`${label}: SKIPPED, PostgreSQL not reachable (run ./scripts/setup.sh as root)`)
    }
  }
  if (admin && pgFiles.length === 0) {
    admin.close()
    results.push(`${label}: no selected file opens a state store`)
  } else if (admin) {
    // Databases left by runs that were killed before their end.
    const alive = (pid) => {
      try {
        process.kill(pid, 0)
        return true
      } catch (e) {
        return e.code === 'EPERM'
      }
    }
    const leftovers = admin
      .prepare("SELECT DISTINCT substring(datname from '^xenstack_p_[0-9]+_') AS prefix FROM pg_database")
      .all()
      .map((r) => r.prefix)
      .filter((p) => p && !alive(Number(p.split('_')[2])))
    admin.close()
    for (const prefix of leftovers) dropTestDatabases(ADMIN_URL, prefix, { onlyOrphaned: false })

    const prefix = `xenstack_p_${process.pid}_`
    const sweep = setInterval(() => {
      try {
        dropTestDatabases(ADMIN_URL, prefix, { onlyOrphaned: true })
      } catch (e) {
        console.error(`run-tests: sweeping test databases: ${e.message}`)
      }
    }, 15_000)
    const env = passEnv({ XENSTACK_TEST_POSTGRES_URL: ADMIN_URL, XENSTACK_TEST_POSTGRES_PREFIX: prefix })
    try {
      report(label, await runPass(label, pgFiles, env, true))
    } finally {
      clearInterval(sweep)
      dropTestDatabases(ADMIN_URL, prefix, { onlyOrphaned: false })
    }
  }
}

console.log(`\nrun-tests: ${results.join('; ')}`)
process.exit(results.some((r) => /FAILED/.test(r)) ? 1 : 0)
