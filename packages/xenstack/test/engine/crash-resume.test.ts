import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { StateStore } from '../../src/state/store.js'
import { EngineStore } from '../../src/engine/store.js'
import { CRASH_NODES, CRASH_TASKS_PER_NODE } from './fixtures/crash-child.js'

const child = join(fileURLToPath(import.meta.url), '..', 'fixtures', 'crash-child.js')
const total = CRASH_NODES * CRASH_TASKS_PER_NODE

const readMarks = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [])

function succeededInDb(dataDir: string): Set<string> {
  const state = StateStore.open({ dataDir })
  try {
    new EngineStore(state.db) // its tables, if the child was killed before making them
    const rows = state.db.prepare(`SELECT key FROM engine_tasks WHERE status = 'succeeded'`).all() as {
      key: string
    }[]
    return new Set(rows.map((r) => r.key).filter((k) => !k.startsWith('_sync')))
  } finally {
    state.close()
  }
}

/** Runs the child until `killAfterDone` tasks have written `done` (then SIGKILL), or to the end. */
function runChild(
  dataDir: string,
  marks: string,
  mode: string,
  killAfterDone?: number,
): Promise<{ killed: boolean; code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dataDir, marks, mode], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (b) => (out += b))
    p.stderr.on('data', (b) => (out += b))
    let killed = false
    const poll =
      killAfterDone === undefined
        ? undefined
        : setInterval(() => {
            const done = readMarks(marks).filter((l) => l.startsWith('done')).length
            if (done >= killAfterDone && !killed) {
              killed = true
              p.kill('SIGKILL')
            }
          }, 3)
    p.on('error', reject)
    p.on('exit', (code) => {
      if (poll) clearInterval(poll)
      resolve({ killed, code, out })
    })
  })
}

test('kill -9 at several points, then resume: the deployment finishes and no succeeded task runs again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-engine-crash-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const dataDir = join(dir, 'data')
  const marks = join(dir, 'marks.log')
  // Kill points: counts of tasks done on disk at the moment of the kill (the first kill may hit mid-task).
  const killPoints = [1, 6, 14, 22, 31]
  const checkpoints: { succeeded: Set<string>; marksAt: number }[] = []
  let mode = 'start'
  let kills = 0
  for (const k of killPoints) {
    const r = await runChild(dataDir, marks, mode, k)
    mode = 'resume'
    if (!r.killed) break // finished before the kill point
    kills++
    checkpoints.push({ succeeded: succeededInDb(dataDir), marksAt: readMarks(marks).length })
  }
  const last = await runChild(dataDir, marks, 'resume')
  assert.equal(last.code, 0, last.out)
  assert.ok(kills >= 3, `expected at least 3 kills, got ${kills}`)
  const summary = JSON.parse(last.out.trim().split('\n').pop() as string)
  assert.equal(summary.status, 'ready')
  assert.equal(summary.tasks.succeeded, total)
  assert.ok(summary.nodes.every((n: { status: string }) => n.status === 'ready'))

  const lines = readMarks(marks)
  // Nothing lost: every task finished at least once.
  for (let n = 0; n < CRASH_NODES; n++)
    for (let k = 0; k < CRASH_TASKS_PER_NODE; k++)
      assert.ok(lines.includes(`done n${n}/t${k}`), `n${n}/t${k} never finished`)
  // No task recorded as succeeded before a kill started again afterwards.
  for (const cp of checkpoints) {
    const later = lines.slice(cp.marksAt).filter((l) => l.startsWith('start '))
    for (const l of later)
      assert.ok(!cp.succeeded.has(l.slice(6)), `${l.slice(6)} succeeded before a kill and ran again`)
  }
  // Re-runs happened only for tasks interrupted mid-run (at most one per node and kill).
  const starts = lines.filter((l) => l.startsWith('start ')).length
  assert.ok(starts - total <= kills * CRASH_NODES, `too many re-runs: ${starts - total}`)
  // The history shows the interrupted tasks (recorded running before being launched, so at least the re-runs).
  const state = StateStore.open({ dataDir })
  const interrupted = state.db
    .prepare(`SELECT COUNT(*) AS c FROM engine_task_history WHERE reason LIKE 'interrupted%'`)
    .get() as { c: number }
  state.close()
  assert.ok(
    interrupted.c >= starts - total && interrupted.c > 0,
    `interrupted ${interrupted.c}, re-runs ${starts - total}`,
  )
})
