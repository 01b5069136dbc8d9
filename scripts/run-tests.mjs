#!/usr/bin/env node
// Runs every package's compiled tests (packages/*/dist/test/**/*.test.js) with Node's built-in runner.
// Usage: node scripts/run-tests.mjs [substring ...]   — only test files whose path contains a substring.
// Environment: XENSTACK_TEST_CONCURRENCY (default 2 files at once), XENSTACK_TEST_TIMEOUT_MS (default 600000 per test).
import { spawn } from 'node:child_process'
import { readdirSync, statSync, existsSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(fileURLToPath(import.meta.url), '..', '..')
const filters = process.argv.slice(2)

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

const concurrency = process.env.XENSTACK_TEST_CONCURRENCY ?? '2'
const timeout = process.env.XENSTACK_TEST_TIMEOUT_MS ?? '600000'
const child = spawn(
  process.execPath,
  ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${timeout}`, ...selected],
  { cwd: root, stdio: 'inherit' },
)
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 1)))
