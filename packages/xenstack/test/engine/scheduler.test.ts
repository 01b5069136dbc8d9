import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Scheduler, runPlan, GraphCycleError, topologicalOrder } from '../../src/engine/scheduler.js'
import { synthPlan, Recorder, type SynthTask } from './synthetic.js'

const statusOf = (plan: ReturnType<typeof synthPlan>, statuses: string[]) =>
  Object.fromEntries(plan.tasks.map((t, i) => [t.key, statuses[i]]))

test('dependencies order tasks; one task per node; the busy-node cap holds', async () => {
  const tasks: SynthTask[] = [{ key: '_sync/start' }]
  for (let n = 0; n < 6; n++) {
    tasks.push({ key: `n${n}/a`, requires: ['_sync/start'] })
    tasks.push({ key: `n${n}/b`, requires: [`n${n}/a`] })
    tasks.push({ key: `n${n}/c`, requires: [`n${n}/a`] })
  }
  tasks.push({ key: '_sync/end', requires: tasks.filter((t) => t.key.startsWith('n')).map((t) => t.key) })
  const plan = synthPlan(tasks)
  const rec = new Recorder()
  const r = await runPlan(plan, rec.runner, { maxBusyNodes: 2 })
  assert.equal(r.status, 'ready')
  assert.ok(r.statuses.every((s) => s === 'succeeded'))
  assert.equal(rec.maxPerNode, 1)
  assert.equal(rec.maxNodes, 2)
  for (let n = 0; n < 6; n++) {
    assert.ok(rec.at(`end n${n}/a`) < rec.at(`start n${n}/b`))
    assert.ok(rec.at(`end n${n}/a`) < rec.at(`start n${n}/c`))
  }
  assert.deepEqual(
    r.nodes.map((n) => n.status),
    Array(6).fill('ready'),
  )
})

test('critical path first: the ready task with more downstream work starts first', async () => {
  // One node, two ready tasks: `short` ends the graph, `long` has a chain of 3 tasks after it.
  const plan = synthPlan([
    { key: 'n1/short', expectedMs: 50 },
    { key: 'n1/long', expectedMs: 10 },
    { key: 'n2/x1', requires: ['n1/long'], expectedMs: 30 },
    { key: 'n2/x2', requires: ['n2/x1'], expectedMs: 30 },
  ])
  const rec = new Recorder()
  const r = await runPlan(plan, rec.runner)
  assert.equal(r.status, 'ready')
  assert.equal(rec.starts[0], 'n1/long')
  // Across nodes under a cap of one busy node: the node whose best task weighs most goes first.
  const plan2 = synthPlan([
    { key: 'a/light', expectedMs: 5 },
    { key: 'b/heavy', expectedMs: 5 },
    { key: 'b/after', requires: ['b/heavy'], expectedMs: 100 },
  ])
  const rec2 = new Recorder()
  await runPlan(plan2, rec2.runner, { maxBusyNodes: 1 })
  assert.equal(rec2.starts[0], 'b/heavy')
})

test('cross-node dependencies: policy all waits for every node, policy any for one success', async () => {
  const plan = synthPlan([
    { key: 'c1/svc', ms: 5 } as SynthTask,
    { key: 'c2/svc' },
    { key: 'c3/svc' },
    { key: 'k1/all', requires: ['c1/svc', 'c2/svc', 'c3/svc'] },
    { key: 'k2/any', any: [['c1/svc', 'c2/svc', 'c3/svc']] },
  ])
  // c1 fails: `all` becomes dep_failed, `any` still runs after another candidate succeeded.
  const rec = new Recorder({ 'c1/svc': { failTimes: Infinity } })
  const r = await runPlan(plan, rec.runner)
  const st = statusOf(plan, r.statuses)
  assert.equal(st['c1/svc'], 'failed')
  assert.equal(st['k1/all'], 'dep_failed')
  assert.equal(st['k2/any'], 'succeeded')
  assert.ok(rec.at('start k2/any') > Math.min(rec.at('end c2/svc'), rec.at('end c3/svc')))
  assert.equal(r.status, 'error')
  assert.deepEqual(r.failedNodes.sort(), ['c1', 'k1'])

  // Every candidate fails: the `any` dependent is dep_failed too.
  const rec2 = new Recorder({
    'c1/svc': { failTimes: Infinity },
    'c2/svc': { failTimes: Infinity },
    'c3/svc': { failTimes: Infinity },
  })
  const r2 = await runPlan(plan, rec2.runner)
  assert.equal(statusOf(plan, r2.statuses)['k2/any'], 'dep_failed')
  assert.ok(!rec2.starts.includes('k2/any'))
})

test('a failed task fails its node and its dependents; sync points still pass', async () => {
  const plan = synthPlan([
    { key: 'a/one' },
    { key: 'a/two', requires: ['a/one'] },
    { key: 'a/other' },
    { key: 'b/needs-a', requires: ['a/two'] },
    { key: 'b/indep' },
    { key: '_sync/deploy_end', requires: ['a/two', 'b/needs-a', 'b/indep'] },
    { key: 'c/post', requires: ['_sync/deploy_end'] },
  ])
  const rec = new Recorder({ 'a/one': { failTimes: Infinity, ms: 20 } })
  const r = await runPlan(plan, rec.runner)
  const st = statusOf(plan, r.statuses)
  assert.equal(st['a/one'], 'failed')
  assert.equal(st['a/two'], 'dep_failed')
  assert.equal(st['b/needs-a'], 'dep_failed')
  assert.equal(st['b/indep'], 'succeeded')
  assert.equal(st['_sync/deploy_end'], 'succeeded')
  assert.equal(st['c/post'], 'succeeded')
  // a/other was either done before a/one failed or is dep_failed with its node; it never runs after.
  assert.ok(['succeeded', 'dep_failed'].includes(st['a/other']))
  assert.equal(r.errors.length, 1)
  assert.equal(r.errors[0].node, 'a')
  assert.equal(r.errors[0].task, 'one')
  assert.equal(r.errors[0].exitCode, 1)
})

test('strategies: one_by_one deploys a group node after node; parallel amount caps nodes inside the group', async () => {
  const build = (capacity: number) => {
    const tasks: SynthTask[] = []
    for (let n = 0; n < 4; n++) {
      tasks.push({ key: `ctl${n}/a`, limiters: [0] })
      tasks.push({ key: `ctl${n}/b`, requires: [`ctl${n}/a`], limiters: [0] })
    }
    return synthPlan(tasks, { limiters: [{ name: 'controller', capacity }] })
  }
  const rec = new Recorder()
  const r = await runPlan(build(1), rec.runner)
  assert.equal(r.status, 'ready')
  assert.equal(rec.maxNodes, 1)
  // A node finishes both of its group tasks before the next node enters.
  const order = rec.starts.map((k) => k.split('/')[0])
  for (let i = 0; i < order.length; i += 2) assert.equal(order[i], order[i + 1])

  const rec2 = new Recorder()
  await runPlan(build(2), rec2.runner)
  assert.equal(rec2.maxNodes, 2)
})

test('fault tolerance: failures within the tolerance continue; one more brakes gracefully', async () => {
  const build = () => {
    const tasks: SynthTask[] = []
    for (let n = 0; n < 6; n++) {
      tasks.push({ key: `cmp${n}/a` })
      tasks.push({ key: `cmp${n}/b`, requires: [`cmp${n}/a`] })
    }
    return tasks
  }
  const nodes = Array.from({ length: 6 }, (_, n) => `cmp${n}`)
  const failing = { 'cmp0/a': { failTimes: Infinity }, 'cmp1/a': { failTimes: Infinity } }
  // Tolerance 2: two failed computes, deployment still ready (non-critical nodes), failures listed.
  const plan = synthPlan(build(), { faultTolerance: [{ name: 'compute', nodes, tolerance: 2 }] })
  const r = await runPlan(plan, new Recorder(failing).runner, { maxBusyNodes: 2 })
  assert.equal(r.status, 'ready')
  assert.deepEqual(r.failedNodes.sort(), ['cmp0', 'cmp1'])
  assert.equal(r.nodes.filter((n) => n.status === 'ready').length, 4)

  // Tolerance 1 (e.g. "-5" on 6 nodes): the second failure brakes; nodes not finished become stopped.
  const plan2 = synthPlan(build(), { faultTolerance: [{ name: 'compute', nodes, tolerance: 1 }] })
  const rec = new Recorder(failing)
  const r2 = await runPlan(plan2, rec.runner, { maxBusyNodes: 2 })
  assert.equal(r2.status, 'error')
  assert.match(r2.reason ?? '', /fault tolerance of group compute exceeded/)
  assert.ok(r2.nodes.some((n) => n.status === 'stopped'))
  assert.ok(r2.statuses.includes('pending'))
  assert.ok(!r2.statuses.includes('running'))
})

test('graceful stop: running tasks finish, nothing new starts, nodes stopped, environment partially deployed', async () => {
  const tasks: SynthTask[] = []
  for (let n = 0; n < 3; n++) {
    tasks.push({ key: `n${n}/a` })
    tasks.push({ key: `n${n}/b`, requires: [`n${n}/a`] })
  }
  tasks.push({ key: 'late/x', requires: ['n0/b', 'n1/b', 'n2/b'] })
  const plan = synthPlan(tasks)
  // n0/a and n2/a are held until the stop: they are certainly running when it comes, whatever the load.
  let openGate = () => {}
  const gate = new Promise<void>((resolve) => (openGate = resolve))
  const rec = new Recorder({ 'n0/a': { gate }, 'n2/a': { gate } })
  const sched: Scheduler = new Scheduler(plan, rec.runner, {
    onEvent: (e) => {
      if (e.type === 'task' && e.key === 'n1/b' && e.status === 'succeeded') {
        sched.stop()
        openGate()
      }
    },
  })
  const r = await sched.run()
  const st = statusOf(plan, r.statuses)
  assert.equal(r.status, 'partially_deployed')
  assert.equal(st['n0/a'], 'succeeded') // it was running when stop came: it finished
  assert.equal(st['n0/b'], 'pending')
  assert.equal(st['late/x'], 'pending')
  assert.ok(!rec.starts.includes('n0/b'))
  assert.deepEqual(
    r.nodes.map((n) => `${n.name}:${n.status}`),
    ['n0:stopped', 'n1:ready', 'n2:stopped', 'late:stopped'],
  )
})

test('per-task timeout fails the task; retries run again; cancel aborts running tasks', async () => {
  const plan = synthPlan([
    { key: 'a/slow', timeoutMs: 30 },
    { key: 'b/flaky', retries: 2 },
    { key: 'c/stubborn', timeoutMs: 30 },
  ])
  const rec = new Recorder({
    'a/slow': { ms: 10_000 },
    'b/flaky': { failTimes: 2 },
    'c/stubborn': { ms: 200, stubborn: true },
  })
  const r = await runPlan(plan, rec.runner)
  const st = statusOf(plan, r.statuses)
  assert.equal(st['a/slow'], 'failed')
  assert.equal(st['c/stubborn'], 'failed')
  assert.match(r.errors.find((e) => e.node === 'a')?.message ?? '', /timed out after 0.03 s/)
  assert.equal(st['b/flaky'], 'succeeded')
  assert.equal(rec.attempts.get('b/flaky'), 3)

  const ac = new AbortController()
  const plan2 = synthPlan([{ key: 'a/long' }, { key: 'a/next', requires: ['a/long'] }])
  const rec2 = new Recorder({ 'a/long': { ms: 10_000 } })
  const p = runPlan(plan2, rec2.runner, { signal: ac.signal })
  // Cancel once a/long is running (not after a fixed delay, which a loaded machine can reach before it starts).
  const deadline = Date.now() + 30_000
  while (!rec2.running.has('a/long')) {
    assert.ok(Date.now() < deadline, `a/long did not start within 30 s (log: ${rec2.log.join(', ')})`)
    await sleep(2)
  }
  ac.abort(new Error('operator cancelled'))
  const r2 = await p
  assert.deepEqual(r2.statuses, ['cancelled', 'pending'])
  assert.equal(r2.status, 'stopped')
})

test('resume: succeeded and skipped tasks are not run again', async () => {
  const plan = synthPlan([{ key: 'a/1' }, { key: 'a/2', requires: ['a/1'] }, { key: 'b/1', requires: ['a/2'] }])
  const rec = new Recorder()
  const r = await runPlan(plan, rec.runner, { initial: ['succeeded', 'failed', 'dep_failed'] })
  assert.equal(r.status, 'ready')
  assert.deepEqual(rec.starts, ['a/2', 'b/1'])
})

test('skipped tasks keep their edges and their reason', async () => {
  const plan = synthPlan([
    { key: 'a/1' },
    { key: 'a/2', requires: ['a/1'], skipReason: 'condition false' },
    { key: 'a/3', requires: ['a/2'] },
  ])
  const events: string[] = []
  const rec = new Recorder()
  const r = await runPlan(plan, rec.runner, {
    onEvent: (e) => {
      if (e.type === 'task' && e.status === 'skipped') events.push(`${e.key}:${e.reason}`)
    },
  })
  assert.deepEqual(r.statuses, ['succeeded', 'skipped', 'succeeded'])
  assert.deepEqual(events, ['a/2:condition false'])
  assert.ok(rec.at('end a/1') < rec.at('start a/3'))
})

test('a cycle is rejected with its tasks named', () => {
  const plan = synthPlan([
    { key: 'a/x', requires: ['a/z'] },
    { key: 'a/y', requires: ['a/x'] },
    { key: 'a/z', requires: ['a/y'] },
  ])
  assert.throws(
    () => topologicalOrder(plan),
    (e: unknown) => e instanceof GraphCycleError && /a\/\w -> a\/\w -> a\/\w -> a\/\w/.test(e.message),
  )
})
