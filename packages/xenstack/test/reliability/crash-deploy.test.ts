// Issue 14 item 2 (and issue 8 item 4): one lab deployment of the XenServer environment (the lab-deploy test's
// two-host lab, registered as `lab up` registers it) crashed with SIGKILL 20 times — between tasks, during tasks (a
// native task mid-XAPI call, a node command in flight) and during state writes — and resumed with
// `xenstack deploy resume` after each kill. Across all runs: no task whose success was recorded runs again (proved
// with a per-task log written outside the process, state/crash-hook.ts), no state row is lost or corrupt (SQLite's
// integrity check, foreign keys, and row checks after every kill), and the end state equals a clean run's (a forced
// full redeploy over it changes nothing, leaves the lab's observable state identical, and ends with the same task
// statuses). Figures go to test-artifacts/reliability/crash.json and docs/reliability.md.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { ARM_PHRASE, CRASH_FILE_ENV, type CrashPoint } from '../../src/state/crash-hook.js'
import { tail, xenstack as runCli, type CliOptions } from '../lab-fixture/cli.js'
import {
  assertDeployed,
  captureEndState,
  requireDeployLab,
  upDeployLab,
  useSqliteOnly,
} from '../lab-fixture/deploy-lab.js'
import { writeFigures } from './figures.js'

const tmp = scratchDirs()

/**
 * Where a run is killed:
 * - `hook`: the process kills itself at the `at`-th arrival at a crash point (state/crash-hook.ts);
 * - `xapi`: the test (which serves the lab's simulator) kills the process when its `nth` XAPI call (not session or
 *   event bookkeeping) arrives, then lets the call run — XAPI acts, the caller is gone;
 * - `mid-task`: the test kills it `delayMs` after the log shows the `nth` task start of the run (asserted: that task
 *   had not ended);
 * - `after-task`: the test kills it as soon as the log shows the `nth` task end of the run (between tasks).
 */
type KillPoint =
  | { kind: 'hook'; point: CrashPoint; at: number }
  | { kind: 'xapi'; nth: number }
  | { kind: 'mid-task'; nth: number; delayMs: number }
  | { kind: 'after-task'; nth: number }

/** Calls a deployment makes that are not its session's own bookkeeping. */
const isTaskCall = (method: string) => !/^(session|event)\./.test(method)

/**
 * 20 points, cycling through the kinds; each early in its run so the deployment lasts for all of them (and once the
 * work left is short, every count drops to 1: see `tighten`).
 */
const KILLS: KillPoint[] = [
  { kind: 'hook', point: 'journal-commit', at: 1 },
  { kind: 'hook', point: 'journal-write', at: 2 },
  { kind: 'xapi', nth: 1 },
  { kind: 'hook', point: 'node-command', at: 3 },
  { kind: 'after-task', nth: 1 },
  { kind: 'mid-task', nth: 1, delayMs: 40 },
  { kind: 'hook', point: 'journal-commit', at: 2 },
  { kind: 'xapi', nth: 3 },
  { kind: 'hook', point: 'journal-write', at: 3 },
  { kind: 'hook', point: 'node-command', at: 8 },
  { kind: 'after-task', nth: 2 },
  { kind: 'mid-task', nth: 1, delayMs: 200 },
  { kind: 'hook', point: 'journal-commit', at: 3 },
  { kind: 'xapi', nth: 5 },
  { kind: 'hook', point: 'journal-write', at: 2 },
  { kind: 'hook', point: 'node-command', at: 5 },
  { kind: 'after-task', nth: 1 },
  { kind: 'mid-task', nth: 2, delayMs: 100 },
  { kind: 'hook', point: 'journal-commit', at: 2 },
  { kind: 'xapi', nth: 2 },
]

/** The same kind of point at its earliest count (the least progress a run can make before it). */
const tighten = (k: KillPoint): KillPoint => (k.kind === 'hook' ? { ...k, at: 1 } : { ...k, nth: 1 })

const describeKill = (k: KillPoint): string =>
  k.kind === 'hook'
    ? `${k.point} #${k.at}`
    : k.kind === 'xapi'
      ? `xapi call #${k.nth}`
      : k.kind === 'mid-task'
        ? `task start #${k.nth} + ${k.delayMs} ms`
        : `task end #${k.nth}`

interface LogLine {
  what: 'start' | 'end' | 'kill'
  key: string
  detail: string
  pid: number
}

function readLog(file: string): LogLine[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [what, key, detail, pid] = l.split(' ')
      return { what: what as LogLine['what'], key, detail, pid: Number(pid) }
    })
}

/** Runs the CLI (the store as this process opens it: SQLite, see the test), with a 5 min hang guard. */
const xenstack = (home: string, args: string[], env: Record<string, string>, watch?: CliOptions['watch']) =>
  runCli(home, args, { env, watch, timeoutMs: 300_000 })

interface Checkpoint {
  succeeded: Set<string>
  logLength: number
}

/**
 * The state after a kill: integrity (SQLite), foreign keys, and the engine's rows of the deployment — every planned
 * task and node has its row, statuses are known ones, history is gapless and no task succeeded twice.
 */
function checkState(home: string, plannedTasks: number | undefined, nodes: number | undefined) {
  const state = StateStore.open({ dataDir: home })
  try {
    const db = state.db
    let integrity = 'not applicable (PostgreSQL)'
    if (state.backend === 'sqlite') {
      integrity = (db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[])
        .map((r) => r.integrity_check)
        .join('; ')
      assert.equal(integrity, 'ok', 'SQLite integrity check')
      assert.deepEqual(db.prepare('PRAGMA foreign_key_check').all(), [], 'foreign key check')
    }
    const dep = db.prepare('SELECT id, status FROM engine_deployments ORDER BY id DESC LIMIT 1').get() as
      { id: number; status: string } | undefined
    if (!dep)
      return {
        backend: state.backend,
        integrity,
        deployment: undefined,
        succeeded: new Set<string>(),
        tasks: 0,
        nodes: 0,
      }
    const rows = db
      .prepare('SELECT idx, key, status FROM engine_tasks WHERE deployment_id = ? ORDER BY idx')
      .all(dep.id) as { idx: number; key: string; status: string }[]
    const plan = JSON.parse(
      (db.prepare('SELECT plan_json FROM engine_deployments WHERE id = ?').get(dep.id) as { plan_json: string })
        .plan_json,
    ) as { nodes: string[] }
    rows.forEach((r, i) => assert.equal(r.idx, i, `engine_tasks of deployment ${dep.id}: row ${i} missing`))
    if (plannedTasks !== undefined) assert.equal(rows.length, plannedTasks, 'a task row was lost')
    const known = ['pending', 'running', 'succeeded', 'failed', 'skipped', 'dep_failed', 'cancelled']
    for (const r of rows) assert.ok(known.includes(r.status), `${r.key}: unknown status ${r.status}`)
    const nodeRows = db.prepare('SELECT node FROM engine_nodes WHERE deployment_id = ?').all(dep.id) as unknown[]
    assert.equal(nodeRows.length, plan.nodes.length, 'a node row was lost')
    if (nodes !== undefined) assert.equal(nodeRows.length, nodes)
    const hist = db
      .prepare('SELECT seq, idx, status FROM engine_task_history WHERE deployment_id = ? ORDER BY seq')
      .all(dep.id) as { seq: number; idx: number; status: string }[]
    hist.forEach((h, i) => {
      assert.equal(h.seq, i + 1, `engine_task_history: seq ${i + 1} missing`)
      assert.ok(h.idx >= 0 && h.idx < rows.length, `history seq ${h.seq}: task index ${h.idx} out of range`)
    })
    const succeededTwice = new Map<number, number>()
    for (const h of hist) if (h.status === 'succeeded') succeededTwice.set(h.idx, (succeededTwice.get(h.idx) ?? 0) + 1)
    for (const [idx, n] of succeededTwice) assert.equal(n, 1, `${rows[idx].key} succeeded ${n} times in the history`)
    return {
      backend: state.backend,
      integrity,
      deployment: dep,
      succeeded: new Set(rows.filter((r) => r.status === 'succeeded').map((r) => r.key)),
      tasks: rows.length,
      nodes: nodeRows.length,
      statuses: new Map(rows.map((r) => [r.key, r.status])),
    }
  } finally {
    state.close()
  }
}

test('crashes: one lab deployment killed with SIGKILL at 20 points and resumed each time', async (t) => {
  if (!(await requireDeployLab(t))) return

  // SQLite, explicitly (this process and every CLI it runs): PRAGMA integrity_check after each kill is the point, and
  // it keeps this ~4 min lab file out of the runner's PostgreSQL pass. The journal's kill points on PostgreSQL are
  // crash-hook.test.ts's and crash-sim.test.ts's (both backends).
  useSqliteOnly(t)
  const started = performance.now()
  const home = tmp('xenstack-crash-')
  const work = tmp('xenstack-crash-work-')
  const log = join(work, 'tasks.log')
  const crashFile = join(work, 'crash.json')
  const { lab, env } = await upDeployLab(home)
  t.diagnostic(`lab up: ${Math.round(performance.now() - started)} ms`)
  // XAPI kill points: the test serves the simulator, so it sees a call arrive before XAPI acts on it.
  let xapiWatch: ((method: string) => boolean) | undefined
  const removeHook = lab.simulator!.sim.messages.addHook(async (info) => {
    if (info.transport === 'internal' || !xapiWatch) return
    if (xapiWatch(info.method.replace(/^Async\./, ''))) await new Promise((r) => setTimeout(r, 50))
  })
  try {
    const armed = (extra: object) => writeFileSync(crashFile, JSON.stringify({ armed: ARM_PHRASE, log, ...extra }))
    const childEnv = { [CRASH_FILE_ENV]: crashFile }

    const checkpoints: Checkpoint[] = []
    const kills: { point: string; hit: boolean; ms: number; tasksLeft?: number }[] = []
    let plannedTasks: number | undefined
    let plannedNodes: number | undefined
    let integrityChecks = 0
    const midTaskKills: string[] = []
    let prevSucceeded = new Set<string>()
    let left = Infinity // tasks not yet succeeded or skipped
    for (const [i, planned] of KILLS.entries()) {
      const k = left <= (KILLS.length - i) * 1.5 ? tighten(planned) : planned
      const args = i === 0 ? ['deploy', env, '--json'] : ['deploy', 'resume', env, '--json']
      armed(k.kind === 'hook' ? { point: k.point, at: k.at } : {})
      let watch: ((pid: number, kill: () => void) => void) | undefined
      if (k.kind === 'xapi') {
        let seen = 0
        let killer: (() => void) | undefined
        watch = (_pid, kill) => (killer = kill)
        xapiWatch = (method) => {
          if (!isTaskCall(method) || !killer) return false
          if (++seen !== k.nth) return false
          killer()
          return true
        }
      } else if (k.kind === 'after-task') {
        watch = (pid, kill) => {
          if (readLog(log).filter((l) => l.pid === pid && l.what === 'end').length >= k.nth) kill()
        }
      } else if (k.kind === 'mid-task') {
        // from the nth start on: the first task seen running for delayMs that has not ended
        const seenAt = new Map<string, number>()
        watch = (pid, kill) => {
          const mine = readLog(log).filter((l) => l.pid === pid)
          if (mine.filter((l) => l.what === 'start').length < k.nth) return
          const open = new Set<string>()
          for (const l of mine)
            if (l.what === 'start') open.add(l.key)
            else if (l.what === 'end') open.delete(l.key)
          const now = Date.now()
          for (const key of open) {
            const at = seenAt.get(key) ?? now
            seenAt.set(key, at)
            if (now - at >= k.delayMs) {
              midTaskKills.push(key)
              return kill()
            }
          }
        }
      }
      const t0 = performance.now()
      const r = await xenstack(home, args, childEnv, watch)
      xapiWatch = undefined
      const ms = Math.round(performance.now() - t0)
      assert.ok(!r.timedOut, `run ${i + 1} hung: ${tail(r, 2000)}`)
      const hit = r.signal === 'SIGKILL'
      kills.push({ point: describeKill(k), hit, ms, tasksLeft: Number.isFinite(left) ? left : undefined })
      t.diagnostic(
        `run ${i + 1} (${args[1] === 'resume' ? 'resume' : 'deploy'}): ${describeKill(k)} → ${hit ? 'killed' : `exit ${r.code}`} after ${ms} ms`,
      )
      assert.ok(hit, `run ${i + 1} was not killed at ${describeKill(k)} (exit ${r.code}):\n${tail(r, 2000)}`)
      if (k.kind === 'hook')
        assert.ok(
          readLog(log).some((l) => l.what === 'kill' && l.pid === r.pid && l.key === k.point),
          `run ${i + 1}: the kill was not at ${k.point}`,
        )
      const s = checkState(home, plannedTasks, plannedNodes)
      integrityChecks++
      if (s.deployment) {
        plannedTasks ??= s.tasks
        plannedNodes ??= s.nodes
        for (const key of prevSucceeded) assert.ok(s.succeeded.has(key), `${key} was succeeded and is no longer`)
        prevSucceeded = s.succeeded
        left = [...(s.statuses?.values() ?? [])].filter((st) => st !== 'succeeded' && st !== 'skipped').length
      }
      checkpoints.push({ succeeded: s.succeeded, logLength: readLog(log).length })
    }

    armed({})
    const tLast = performance.now()
    const last = await xenstack(home, ['deploy', 'resume', env, '--json'], childEnv)
    const lastMs = Math.round(performance.now() - tLast)
    assert.equal(last.code, 0, `the last resume failed:\n${tail(last)}`)
    assert.equal(last.json?.status, 'ready')
    const final = checkState(home, plannedTasks, plannedNodes)
    integrityChecks++
    assert.equal(final.deployment?.status, 'ready')

    // No task whose success was on disk at a kill started again afterwards.
    const lines = readLog(log)
    const reRunsOfSucceeded: string[] = []
    for (const cp of checkpoints)
      for (const l of lines.slice(cp.logLength))
        if (l.what === 'start' && cp.succeeded.has(l.key)) reRunsOfSucceeded.push(l.key)
    assert.deepEqual(reRunsOfSucceeded, [], 'tasks recorded as succeeded ran again')
    // Every task that ran is succeeded, and its last attempt is the one that succeeded (nothing ran after it).
    const starts = new Map<string, number>()
    for (const l of lines) if (l.what === 'start') starts.set(l.key, (starts.get(l.key) ?? 0) + 1)
    for (const key of starts.keys()) {
      assert.equal(final.statuses?.get(key), 'succeeded', `${key} ran and is not succeeded`)
      const lastLine = lines.filter((l) => l.key === key).pop()
      assert.ok(lastLine?.what === 'end' && lastLine.detail === 'succeeded', `${key}: its last attempt did not succeed`)
    }
    const interrupted = [...starts].filter(([, n]) => n > 1).map(([key, n]) => `${key} x${n}`)
    const ranToEndUnrecorded = new Set<string>()
    {
      // a task that logged its end (succeeded) and started again: it finished but its success was not committed
      const ended = new Set<string>()
      for (const l of lines) {
        if (l.what === 'end' && l.detail === 'succeeded') ended.add(l.key)
        if (l.what === 'start' && ended.has(l.key)) ranToEndUnrecorded.add(l.key)
      }
    }
    // the mid-task kills hit a task that had started and not ended, and it ran again to its end
    assert.equal(midTaskKills.length, KILLS.filter((k) => k.kind === 'mid-task').length)
    for (const key of midTaskKills) assert.ok((starts.get(key) ?? 0) >= 2, `${key}: killed mid-task, never re-run`)

    // The end state equals a clean run's: a forced full run over it changes nothing and leaves the lab as it was.
    const before = await captureEndState(lab)
    const tClean = performance.now()
    const clean = await xenstack(home, ['deploy', env, '--force', '--json'], {})
    const cleanMs = Math.round(performance.now() - tClean)
    assert.equal(clean.code, 0, `forced deploy failed:\n${tail(clean)}`)
    assert.equal(clean.json?.status, 'ready')
    assert.equal(clean.json?.changes, 0, 'a full run over the crashed deployment changed something')
    const after = await captureEndState(lab)
    assert.deepEqual(after, before, 'the forced full run changed what the lab shows')
    const cleanState = checkState(home, undefined, undefined)
    assert.deepEqual(
      [...(cleanState.statuses ?? [])].sort(),
      [...(final.statuses ?? [])].sort(),
      'task statuses differ from a full run',
    )
    // What a clean deployment makes, once (as lab-deploy.test.ts checks it after one clean run).
    assertDeployed(before)

    const figures = {
      test: 'packages/xenstack/test/reliability/crash-deploy.test.ts',
      backend: final.backend,
      killPoints: KILLS.length,
      killsHit: kills.filter((k) => k.hit).length,
      byKind: Object.fromEntries(
        ['hook', 'xapi', 'mid-task', 'after-task'].map((kind) => [kind, KILLS.filter((k) => k.kind === kind).length]),
      ),
      resumes: KILLS.length,
      plannedTasks,
      taskAttempts: lines.filter((l) => l.what === 'start').length,
      tasksRun: starts.size,
      succeededTasksRunAgain: reRunsOfSucceeded.length,
      interruptedTasksRunAgain: interrupted,
      midTaskKills,
      endedButUnrecordedRunAgain: [...ranToEndUnrecorded],
      integrityChecks,
      integrity: final.integrity,
      rowsLost: 0,
      forcedFullRunChanges: clean.json.changes,
      labStateItemsCompared: Object.keys(before).length,
      kills,
      lastResumeMs: lastMs,
      forcedFullRunMs: cleanMs,
      wallMs: Math.round(performance.now() - started),
    }
    writeFigures('crash', figures)
    t.diagnostic(`crash figures: ${JSON.stringify({ ...figures, kills: undefined })}`)
  } finally {
    removeHook()
    await lab.down()
  }
})
