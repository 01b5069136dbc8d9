// The test-only crash hook (src/state/crash-hook.ts) on its own, with a real deployment process on the local executor:
// it arms only with the exact phrase, and its state-write points land where they say — `journal-write` inside the
// journal's transaction (nothing of that batch is on disk afterwards: a task that ended is not recorded succeeded and
// runs again on resume), `journal-commit` after it (the batch is on disk and its succeeded tasks never run again).
// The store is opened by data directory (SQLite, or PostgreSQL in the test runner's second pass).
//
// This file is also the deployment process: with CRASH_HOOK_CHILD=start|resume it deploys and prints its summary.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { EngineStore } from '../../src/engine/store.js'
import { createTaskRunner } from '../../src/engine/tasks.js'
import { ARM_PHRASE, CRASH_FILE_ENV } from '../../src/state/crash-hook.js'
import { synthPlan, type SynthTask } from '../engine/synthetic.js'
import { TestLocalExecutor } from '../engine/local-exec.js'
import { deployAndReport } from './deployment-child.js'

const SELF = fileURLToPath(import.meta.url)
const ENV = 'crash-hook'

function plan() {
  const tasks: SynthTask[] = [{ key: '_sync/start' }]
  for (let n = 0; n < 2; n++)
    for (let k = 0; k < 4; k++)
      tasks.push({ key: `n${n}/t${k}`, requires: [k === 0 ? '_sync/start' : `n${n}/t${k - 1}`], type: 'shell' })
  const p = synthPlan(tasks)
  for (const t of p.tasks) if (t.type === 'shell') t.parameters = { cmd: 'sleep 0.02' }
  return p
}

async function child(mode: string): Promise<void> {
  const state = StateStore.open({ dataDir: process.env.CRASH_HOOK_HOME! })
  try {
    const store = new EngineStore(state.db)
    const runner = createTaskRunner({ access: { executor: (node) => new TestLocalExecutor(node) } })
    await deployAndReport(store, ENV, mode, plan, runner)
  } finally {
    state.close()
  }
}

if (process.env.CRASH_HOOK_CHILD) {
  await child(process.env.CRASH_HOOK_CHILD)
} else {
  const tmp = scratchDirs()

  const run = (home: string, mode: 'start' | 'resume', crashFile?: string) =>
    new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve, reject) => {
      const env: NodeJS.ProcessEnv = { ...process.env, CRASH_HOOK_CHILD: mode, CRASH_HOOK_HOME: home }
      delete env[CRASH_FILE_ENV]
      if (crashFile) env[CRASH_FILE_ENV] = crashFile
      const p = spawn(process.execPath, [SELF], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      p.stdout.on('data', (b) => (out += b))
      p.stderr.on('data', (b) => (err += b))
      p.on('error', reject)
      p.on('close', (code, signal) => resolve({ code, signal, out, err }))
    })

  const logLines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [])

  const taskStatuses = (home: string) => {
    const state = StateStore.open({ dataDir: home })
    try {
      if (state.backend === 'sqlite')
        assert.equal(
          (state.db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check,
          'ok',
        )
      const engine = new EngineStore(state.db)
      const dep = engine.latestDeployment(ENV)!
      return new Map(engine.tasks(dep.id).map((r) => [r.key, r.status]))
    } finally {
      state.close()
    }
  }

  /**
   * A deployment killed by the hook at `point`'s second flush (flush 1 marks the first tasks running; flush 2 carries
   * the first task's success): the task log up to the kill, and `resume()`, which resumes it with the hook logging only.
   */
  const killedAt = async (point: 'journal-write' | 'journal-commit') => {
    const dir = tmp(`xenstack-crash-hook-${point}-`)
    const home = join(dir, 'home')
    const crashFile = join(dir, 'crash.json')
    const log = join(dir, 'tasks.log')
    writeFileSync(crashFile, JSON.stringify({ armed: ARM_PHRASE, log, point, at: 2 }))
    const r = await run(home, 'start', crashFile)
    assert.equal(r.signal, 'SIGKILL', r.out + r.err)
    assert.match(r.err, /TEST CRASH HOOK ARMED/)
    const lines = logLines(log)
    assert.ok(
      lines.some((l) => l.startsWith(`kill ${point} 2 `)),
      lines.join('\n'),
    )
    const resume = async () => {
      writeFileSync(crashFile, JSON.stringify({ armed: ARM_PHRASE, log }))
      const resumed = await run(home, 'resume', crashFile)
      assert.equal(resumed.code, 0, resumed.out + resumed.err)
      return logLines(log).slice(lines.length)
    }
    return { home, lines, resume }
  }

  test('a crash file without the exact phrase arms nothing: the deployment runs to its end and logs nothing', async () => {
    const dir = tmp('xenstack-crash-hook-unarmed-')
    const crashFile = join(dir, 'crash.json')
    const log = join(dir, 'tasks.log')
    writeFileSync(crashFile, JSON.stringify({ armed: 'yes', log, point: 'journal-write', at: 1 }))
    const r = await run(join(dir, 'home'), 'start', crashFile)
    assert.equal(r.code, 0, r.out + r.err)
    assert.equal(JSON.parse(r.out).status, 'ready')
    assert.match(r.err, /not armed \(armed: expected the test phrase\)/)
    assert.equal(existsSync(log), false)
  })

  test('journal-write: killed inside the transaction — the batch is not on disk and its ended task runs again', async () => {
    const { home, lines, resume } = await killedAt('journal-write')
    const ended = lines.filter((l) => l.startsWith('end ')).map((l) => l.split(' ')[1])
    assert.ok(ended.length >= 1, 'a task ended before the kill')
    const statuses = taskStatuses(home)
    for (const key of ended) assert.equal(statuses.get(key), 'running', `${key}: its success was in the killed batch`)
    const after = await resume()
    for (const key of ended)
      assert.ok(
        after.some((l) => l.startsWith(`start ${key} `)),
        `${key} did not run again`,
      )
    assert.ok([...taskStatuses(home).values()].every((s) => s === 'succeeded'))
  })

  test('journal-commit: killed after the commit — the batch is on disk and its succeeded tasks never run again', async () => {
    const { home, lines, resume } = await killedAt('journal-commit')
    const statuses = taskStatuses(home)
    const succeeded = [...statuses].filter(([, s]) => s === 'succeeded').map(([k]) => k)
    const ended = lines.filter((l) => l.startsWith('end ')).map((l) => l.split(' ')[1])
    assert.ok(ended.length >= 1 && ended.every((k) => succeeded.includes(k)), `ended ${ended}, on disk ${succeeded}`)
    const starts = (await resume()).filter((l) => l.startsWith('start ')).map((l) => l.split(' ')[1])
    for (const key of succeeded) assert.ok(!starts.includes(key), `${key} succeeded before the kill and ran again`)
    assert.equal(starts.length + succeeded.filter((k) => !k.startsWith('_')).length, 8)
  })
}
