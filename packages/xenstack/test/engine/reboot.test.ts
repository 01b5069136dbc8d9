// The `reboot` task on the local executor. The lab's hosts are network namespaces on the machine that runs the
// tests, so nothing here may run `reboot`: the node's boot id is a file, and the "reboot" is a real background
// process that replaces it after a while (and removes it meanwhile, like a node that does not answer). What is
// tested is the engine's part: read the boot id, start the reboot, wait for a different boot id with a deadline,
// and fail with a clear error when it never changes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildExecutionPlan } from '../../src/engine/graph.js'
import { createTaskRunner } from '../../src/engine/tasks.js'
import type { PlanTask } from '../../src/engine/types.js'
import { TestLocalExecutor } from './local-exec.js'

function rebootTask(timeoutS: number): PlanTask {
  const { plan } = buildExecutionPlan({
    tasks: [
      {
        task: { id: 'reboot-node', type: 'reboot', roles: ['*'], requires: [], parameters: { timeout: timeoutS } },
        source: 'test',
      },
    ],
    nodes: [{ name: 'cmp-reboot', roles: ['compute'] }],
  })
  const t = plan.tasks.find((x) => x.id === 'reboot-node')
  assert.ok(t, 'the plan has the reboot task')
  return t
}

function setup(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-engine-reboot-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const idFile = join(dir, 'boot_id')
  writeFileSync(idFile, 'boot-1\n')
  return { dir, idFile }
}

const ctx = () => ({ signal: new AbortController().signal, attempt: 1 })

test('reboot waits through a node that does not answer until it is back with a new boot id', async (t) => {
  const { idFile } = setup(t)
  const task = rebootTask(60)
  assert.equal(task.timeoutMs, 60_000)
  const runner = createTaskRunner({
    access: { executor: (n) => new TestLocalExecutor(n) },
    rebootPollMs: 100,
    bootIdCommand: `cat ${idFile}`,
    // Down for a while (no boot id), then up with a new one.
    rebootCommand: `(sleep 0.3; rm -f ${idFile}; sleep 0.7; echo boot-2 > ${idFile}) >/dev/null 2>&1 &`,
  })
  const started = Date.now()
  const outcome = await runner(task, ctx())
  assert.equal(outcome.status, 'succeeded', JSON.stringify(outcome.error))
  assert.ok(Date.now() - started >= 1000, 'it waited for the new boot id')
  assert.deepEqual(outcome.changes, [{ resource: 'boot id of cmp-reboot', result: 'changed' }])
})

test('reboot fails with the node, step, old boot id and deadline when the boot id never changes', async (t) => {
  const { idFile } = setup(t)
  const task = rebootTask(2)
  const runner = createTaskRunner({
    access: { executor: (n) => new TestLocalExecutor(n) },
    rebootPollMs: 200,
    bootIdCommand: `cat ${idFile}`,
    rebootCommand: 'true', // the node ignores the reboot
  })
  const started = Date.now()
  const outcome = await runner(task, ctx())
  const elapsed = Date.now() - started
  assert.equal(outcome.status, 'failed')
  const e = outcome.error
  assert.ok(e)
  assert.equal(e.node, 'cmp-reboot')
  assert.equal(e.task, 'reboot-node')
  assert.equal(e.step, 'wait for new boot id')
  assert.match(e.message, /did not come back with a new boot id within 1\.6 s/)
  assert.match(e.message, /boot id before the reboot: boot-1; last answer: the same boot id boot-1/)
  // The task's own deadline ends the wait (the step and message above say so, not the scheduler's bare timer); it
  // waited that long at least. The upper bound only catches a hang: a loaded machine stretches the polls.
  assert.ok(elapsed >= 1600 && elapsed < 60_000, `waited ${elapsed} ms`)
})

test('reboot fails before rebooting when the boot id cannot be read', async (t) => {
  const { dir } = setup(t)
  const marker = join(dir, 'rebooted')
  const runner = createTaskRunner({
    access: { executor: (n) => new TestLocalExecutor(n) },
    rebootPollMs: 100,
    bootIdCommand: `cat ${join(dir, 'missing')}`,
    rebootCommand: `touch ${marker}`,
  })
  const outcome = await runner(rebootTask(5), ctx())
  assert.equal(outcome.status, 'failed')
  assert.equal(outcome.error?.step, 'read boot id before reboot')
  assert.match(outcome.error?.message ?? '', /cannot read the boot id \(cat .*missing\): exit code 1/)
  assert.equal(existsSync(marker), false, 'the reboot command never ran')
})
