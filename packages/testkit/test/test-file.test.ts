// testkit's test-file preload (src/test-file.ts): a test file's process (NODE_TEST_CONTEXT set, as node --test sets
// it) names itself in XENSTACK_TEST_FILE and the processes it starts inherit the name; other processes are left alone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const preload = fileURLToPath(new URL('../src/test-file.js', import.meta.url))

test('the preload names the test file for its process and its children, and only under the test runner', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'testkit-test-file-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const child = join(dir, 'child.mjs')
  const file = join(dir, 'one.test.mjs')
  writeFileSync(child, 'console.log(`child ${process.env.XENSTACK_TEST_FILE}`)\n')
  writeFileSync(
    file,
    [
      "import { spawnSync } from 'node:child_process'",
      'console.log(`file ${process.env.XENSTACK_TEST_FILE}`)',
      `process.stdout.write(spawnSync(process.execPath, [${JSON.stringify(child)}], { encoding: 'utf8' }).stdout)`,
    ].join('\n'),
  )
  const run = (env: NodeJS.ProcessEnv) => {
    const base = { ...process.env }
    delete base.XENSTACK_TEST_FILE
    delete base.NODE_TEST_CONTEXT
    const r = spawnSync(process.execPath, [`--import=${preload}`, file], { encoding: 'utf8', env: { ...base, ...env } })
    assert.equal(r.status, 0, r.stderr)
    return r.stdout.trim().split('\n')
  }
  assert.deepEqual(run({ NODE_TEST_CONTEXT: 'child-v8' }), [`file ${file}`, `child ${file}`])
  // A name given already (a test file's own child) is kept.
  assert.deepEqual(run({ NODE_TEST_CONTEXT: 'child-v8', XENSTACK_TEST_FILE: '/x/outer.test.js' }), [
    'file /x/outer.test.js',
    'child /x/outer.test.js',
  ])
  assert.deepEqual(run({}), ['file undefined', 'child undefined'])
})
