/**
 * Reports and the CLI without a lab: JSON and JUnit XML of recorded runs (well-formed, counts per status, the
 * step message and evidence on failures, secrets scrubbed), `health show` of the last runs and of one run, and the
 * errors `health run`/`show` give for unknown environments, runs and sets.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { XMLParser } from 'fast-xml-parser'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { HealthStore, type TestResult } from '../../src/health/index.js'
import { jsonReport, junitReport } from '../../src/health/report.js'
import { runCli } from '../cli/run.js'

const scratch = scratchDirs()

const result = (
  id: string,
  status: TestResult['status'],
  message = '',
  extra: Partial<TestResult> = {},
): TestResult => ({
  id,
  testset: 'sanity',
  name: `Test ${id}`,
  description: 'd',
  duration: '1 s',
  status,
  message,
  step: null,
  taken: 0.25,
  evidence: [],
  startedAt: '2026-01-01T00:00:00.000Z',
  endedAt: '2026-01-01T00:00:01.000Z',
  ...extra,
})

function recorded(dataDir: string) {
  const state = StateStore.open({ dataDir })
  const store = new HealthStore(state)
  const run = store.createRun({
    environment: 'envA',
    testset: 'sanity',
    tests: [
      result('a.ok', 'success', 'warning: dom0 / is 85 % full'),
      result('a.fail', 'failure', 'Step 2 failed: expected a route <via HIMN>; found "none" & more', {
        step: 2,
        evidence: [{ label: 'ip route', value: 'default via 10.0.0.1' }],
      }),
      result('a.err', 'error', 'Step 1: ssh: connection refused', { step: 1 }),
      result('a.skip', 'skipped', 'no storage network'),
      result('a.off', 'disabled', 'not applicable: needs deployment tags "ha"'),
    ],
  })
  store.finishRun(run.id, 'finished')
  return { state, store, run: store.run(run.id) }
}

test('JSON and JUnit XML reports: counts, messages, evidence, well-formed', () => {
  const { state, run } = recorded(scratch('health-report-'))
  try {
    const j = jsonReport('envA', [run])
    assert.equal(j.ok, false)
    assert.deepEqual(
      { total: j.summary.total, success: j.summary.success, failure: j.summary.failure, error: j.summary.error },
      { total: 5, success: 1, failure: 1, error: 1 },
    )
    assert.equal(j.runs[0]!.tests[1]!.message, 'Step 2 failed: expected a route <via HIMN>; found "none" & more')

    const text = junitReport('envA', [run])
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(text)
    const suites = doc.testsuites
    assert.equal(suites.tests, '5')
    assert.equal(suites.failures, '1')
    assert.equal(suites.errors, '1')
    assert.equal(suites.skipped, '2')
    const cases = suites.testsuite.testcase as Record<string, any>[]
    assert.equal(suites.testsuite.name, 'sanity')
    assert.deepEqual(
      cases.map((c) => c.name),
      ['a.ok', 'a.fail', 'a.err', 'a.skip', 'a.off'],
    )
    assert.equal(cases[1]!.failure.message, 'Step 2 failed: expected a route <via HIMN>; found "none" & more')
    assert.match(cases[1]!.failure['#text'], /default via 10\.0\.0\.1/)
    assert.equal(cases[2]!.error.message, 'Step 1: ssh: connection refused')
    assert.equal(cases[4]!.skipped.message, 'disabled: not applicable: needs deployment tags "ha"')
    assert.match(cases[0]!['system-out'], /warning: dom0/)
  } finally {
    state.close()
  }
})

test('health show: last runs, one run, JUnit file; errors for unknown environment, run and set', async () => {
  const dataDir = scratch('health-cli-')
  const { state, run } = recorded(dataDir)
  state.close()
  const shown = await runCli(['health', 'show', 'envA', '--data-dir', dataDir])
  assert.equal(shown.code, 0, shown.stderr)
  assert.match(shown.stdout, /sanity — Sanity tests/)
  assert.match(shown.stdout, /FAIL {4}Test a\.fail/)
  assert.match(shown.stdout, /Step 2 failed: expected a route <via HIMN>/)
  assert.match(shown.stdout, /evidence: ip route: default via 10\.0\.0\.1/)
  assert.match(shown.stdout, /envA: 1 passed, 1 failed, 1 errors, 1 skipped, 1 not applicable/)

  const junit = join(dataDir, 'report.xml')
  const one = await runCli(['health', 'show', 'envA', run.id, '--json', '--junit', junit, '--data-dir', dataDir])
  assert.equal(one.code, 0, one.stderr)
  assert.equal(JSON.parse(one.stdout).runs[0].id, run.id)
  assert.match(readFileSync(junit, 'utf8'), /<testsuites name="xenstack health envA" tests="5" failures="1"/)

  const none = await runCli(['health', 'show', 'envB', '--data-dir', dataDir])
  assert.equal(none.code, 3)
  assert.match(none.stderr, /environment "envB" has no health runs/)
  const noRun = await runCli(['health', 'show', 'envA', 'nope', '--data-dir', dataDir])
  assert.equal(noRun.code, 3)
  assert.match(noRun.stderr, /health run nope does not exist/)
  const noEnv = await runCli(['health', 'run', 'envB', '--data-dir', dataDir])
  assert.equal(noEnv.code, 3)
  assert.match(noEnv.stderr, /environment "envB" does not exist/)
})
