import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { EngineStore } from '../../src/engine/store.js'
import { seedLocalEnvironment } from './fixtures.js'
import { runCli } from './run.js'

const scratch = scratchDirs()
let dir: string
let dataDir: string
const cli = (args: string[]) => runCli([...args, '--data-dir', dataDir])

function marks(): string {
  const f = join(dir, 'marks')
  const v = existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : []
  rmSync(f, { force: true })
  return v.sort().join(',')
}

before(() => {
  dir = scratch('xenstack-cli-deploy-')
  dataDir = join(dir, 'data')
  seedLocalEnvironment(dataDir, dir)
})

test('deploy --tasks runs only the named tasks; --nodes only those nodes; plain progress lines off a terminal', async () => {
  const t = await cli(['deploy', 'd1', '--tasks', 'two', '--json'])
  assert.equal(t.code, 0, t.stderr)
  assert.equal(marks(), 'two,two')
  const s = JSON.parse(t.stdout)
  assert.deepEqual(Object.keys(s).slice(0, 6), ['environment', 'deployment', 'status', 'nodes', 'tasks', 'changes'])
  assert.equal(s.status, 'ready')

  const n = await cli(['deploy', 'd1', '--nodes', 'cmp1', '--force'])
  assert.equal(n.code, 0, n.stderr)
  assert.equal(marks(), 'one,two')
  assert.match(n.stderr, /^\[cmp1\] one: succeeded$/m)
  assert.doesNotMatch(n.stderr, /\[cmp2\]/)
  assert.match(n.stdout, /deployment \d+ of d1: ready/)

  const unknown = await cli(['deploy', 'd1', '--nodes', 'cmp9'])
  assert.equal(unknown.code, 3)
  assert.equal(unknown.stderr, 'xenstack: --nodes: no node cmp9 in the environment\nhint: nodes: cmp1, cmp2\n')
  const badTask = await cli(['deploy', 'd1', '--tasks', 'nope'])
  assert.equal(badTask.code, 3)
  assert.match(badTask.stderr, /--tasks: no task nope in the graph/)
})

test('deploy of a failing task: exit 1, then deploy logs and history tell which node, task, exit code and output', async () => {
  const state = StateStore.open({ dataDir })
  state.environments.saveSettings('d1', { common: { flavor: { type: 'text', value: 'broken' } } })
  state.close()
  const r = await cli(['deploy', 'd1', '--force', '--json'])
  assert.equal(r.code, 1)
  const s = JSON.parse(r.stdout)
  assert.equal(s.status, 'error')
  assert.equal(s.errors[0].task, 'breaks')
  marks()

  const logs = await cli(['deploy', 'logs', 'd1', '--failed', '--json'])
  assert.equal(logs.code, 0, logs.stderr)
  const l = JSON.parse(logs.stdout)
  assert.equal(l.deployment, s.deployment)
  const failed = l.tasks.filter((t: any) => t.status === 'failed')
  assert.deepEqual(failed.map((t: any) => [t.node, t.task, t.error.exitCode]).sort(), [
    ['cmp1', 'breaks', 3],
    ['cmp2', 'breaks', 3],
  ])
  // What could not run because of it is listed with the reason.
  for (const t of l.tasks.filter((x: any) => x.status === 'dep_failed')) assert.match(t.reason, /failed/)
  assert.ok(failed[0].error.tail.includes('about to fail'))
  const one = await cli(['deploy', 'logs', 'd1', '--node', 'cmp2', '--task', 'one'])
  assert.equal(one.code, 0, one.stderr)
  assert.match(one.stdout, /^== \[cmp2\] one: succeeded\n {3}output of one\n$/)
  const none = await cli(['deploy', 'logs', 'd1', '--node', 'cmp7'])
  assert.equal(none.code, 3)

  const h = await cli(['deploy', 'history', 'd1', '--json'])
  assert.equal(h.code, 0, h.stderr)
  const hist = JSON.parse(h.stdout) as any[]
  assert.deepEqual(
    hist.map((x) => [x.status, x.force]),
    [
      ['ready', false],
      ['ready', true],
      ['error', true],
    ],
  )
  assert.equal(hist[2].tasks.failed, l.tasks.length)
  assert.equal(hist[2].deployment, s.deployment)
  const table = await cli(['deploy', 'history', 'd1'])
  assert.match(table.stdout, /^DEPLOYMENT\s+MODE\s+STATUS/)
  const noEnv = await cli(['deploy', 'history', 'nope'])
  assert.equal(noEnv.code, 3)
  assert.equal(noEnv.stderr, 'xenstack: environment nope has no deployment\nhint: xenstack deploy nope\n')
})

test('env delete is refused while a deployment runs; afterwards it forgets the history, so a new environment of the name deploys everything', async () => {
  const state = StateStore.open({ dataDir })
  const engine = new EngineStore(state.db)
  // A deployment recorded as running in this (live) process.
  const id = engine.createDeployment('d1', 'deploy', false, {
    nodes: [],
    tasks: [],
    limiters: [],
    faultTolerance: [],
  } as any)
  engine.setStatus(id, 'running')
  state.close()
  const refused = await cli(['env', 'delete', 'd1'])
  assert.equal(refused.code, 1)
  assert.match(
    refused.stderr,
    new RegExp(
      `environment d1 has deployment ${id} running .*not deleted\\nhint: stop it first: xenstack deploy stop d1\\n$`,
    ),
  )
  const s2 = StateStore.open({ dataDir })
  new EngineStore(s2.db).setStatus(id, 'stopped')
  s2.close()

  assert.equal((await cli(['env', 'delete', 'd1'])).code, 0)
  assert.equal((await cli(['deploy', 'history', 'd1'])).code, 3)
  seedLocalEnvironment(dataDir, dir)
  const r = await cli(['deploy', 'd1', '--json'])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(marks(), 'one,one,two,two')
})
