import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { buildExecutionPlan, GraphBuildError, type SourcedTask, type TaskDefinition } from '../../src/engine/graph.js'
import { runPlan } from '../../src/engine/scheduler.js'
import { Recorder } from './synthetic.js'
import { corpusDir } from '../plugins/corpus.js'

const corpus = corpusDir()

function load(rel: string, source: string): SourcedTask[] {
  const file = join(corpus, rel)
  return (parse(readFileSync(file, 'utf8')) as TaskDefinition[]).map((task) => ({ task, source, location: file }))
}

const release = () => load('fuel-web-release/deployment_tasks.yaml', 'release')
const nodes = [
  { name: 'ctl1', roles: ['primary-controller'] },
  { name: 'ctl2', roles: ['controller'] },
  { name: 'ctl3', roles: ['controller'] },
  { name: 'cmp1', roles: ['compute'] },
  { name: 'cmp2', roles: ['compute'] },
  { name: 'stor1', roles: ['cinder'] },
]

test('the corpus release core graph with the XenServer 8.0 plugin expands per node and runs in order', async () => {
  const { plan, notes } = buildExecutionPlan({
    tasks: [...release(), ...load('fuel-plugin-xenserver/8.0/deployment_tasks.yaml', 'fuel-plugin-xenserver')],
    nodes,
  })
  const keys = new Set(plan.tasks.map((t) => t.key))
  for (const n of ['ctl1', 'ctl2', 'cmp1', 'stor1']) {
    assert.ok(keys.has(`${n}/netconfig`), `${n}/netconfig`)
    assert.ok(keys.has(`${n}/upload_nodes_info`), `${n}/upload_nodes_info (role /.*/)`)
    assert.ok(keys.has(`${n}/rsync_core_puppet`), `${n}/rsync_core_puppet (role *)`)
  }
  assert.ok(keys.has('cmp1/compute-post-deployment') && keys.has('cmp2/install-pv-tool'))
  assert.ok(keys.has('ctl1/controller-post-deployment') && !keys.has('ctl2/controller-post-deployment'))
  assert.ok(keys.has('_sync/deploy_end') && keys.has('ctl2/controller_start') && keys.has('ctl2/controller_end'))
  assert.ok(notes.some((n) => /master/.test(n)))
  // Strategies and fault tolerance from the role groups.
  assert.deepEqual(
    plan.limiters.map((l) => `${l.name}:${l.capacity}`),
    ['group primary-controller:1', 'group controller:6', 'group primary-mongo:1'],
  )
  const ft = Object.fromEntries(plan.faultTolerance.map((g) => [g.name, g.tolerance]))
  assert.equal(ft['primary-controller'], 0)
  assert.equal(ft['controller'], 0)
  assert.equal(ft['compute'], 0) // 2% of 2 nodes
  assert.equal(ft['cinder'], undefined) // no declared tolerance: its failed nodes are critical
  // Plugin shell tasks keep their parameters and get astute's defaults.
  const pv = plan.tasks.find((t) => t.key === 'cmp1/install-pv-tool')
  assert.equal(pv?.timeoutMs, 10_000)
  assert.equal(pv?.source, 'fuel-plugin-xenserver')
  assert.equal(pv?.retries, 2)

  const rec = new Recorder()
  const r = await runPlan(plan, rec.runner, { maxBusyNodes: 50 })
  assert.equal(r.status, 'ready', JSON.stringify(r.errors))
  const at = (e: string) => rec.at(e)
  // Role groups in Fuel's order: primary-controller, then controllers, then computes and cinder.
  assert.ok(at('end ctl1/deploy_legacy') < at('start ctl2/netconfig'))
  for (const c of ['ctl2', 'ctl3'])
    for (const k of ['cmp1', 'cmp2', 'stor1']) assert.ok(at(`end ${c}/deploy_legacy`) < at(`start ${k}/globals`))
  // Pre-deployment before deployment before post-deployment, on every node.
  assert.ok(at('end cmp1/rsync_core_puppet') < at('start ctl1/netconfig'))
  for (const n of nodes) assert.ok(at(`end ${n.name}/deploy_legacy`) < at('start cmp1/install-pv-tool'))
  assert.ok(at('end cmp2/install-pv-tool') < at('start cmp2/compute-post-deployment'))
  assert.ok(at('end ctl1/upload_nodes_info') < at('start ctl1/update_hosts'))
})

test('a dangling reference (master plugin against the corpus release) is an error naming the task and file', () => {
  assert.throws(
    () =>
      buildExecutionPlan({
        tasks: [...release(), ...load('fuel-plugin-xenserver/master/deployment_tasks.yaml', 'fuel-plugin-xenserver')],
        nodes,
      }),
    (e: unknown) =>
      e instanceof GraphBuildError &&
      /task install-pv-tool \(.*master\/deployment_tasks.yaml\): references unknown task "network_configuration_end"/.test(
        e.message,
      ),
  )
})

test('a cycle and a bad regex are errors naming them', () => {
  const t = (task: Partial<TaskDefinition>): SourcedTask => ({
    task: { type: 'shell', parameters: { cmd: 'true' }, roles: ['compute'], ...task } as TaskDefinition,
    source: 'p',
  })
  assert.throws(
    () =>
      buildExecutionPlan({
        tasks: [t({ id: 'a', requires: ['c'] }), t({ id: 'b', requires: ['a'] }), t({ id: 'c', requires: ['b'] })],
        nodes,
      }),
    /cycle: cmp1\/\w -> cmp1\/\w -> cmp1\/\w -> cmp1\/\w/,
  )
  assert.throws(
    () => buildExecutionPlan({ tasks: [t({ id: 'a', roles: ['/comp(ute/'] })], nodes }),
    /task a \(p\): the regex \/comp\(ute\/ does not compile/,
  )
})

test('conditions: a false condition keeps the task as skipped with the reason; changed() compares deployments', async () => {
  const t = (task: Partial<TaskDefinition>): SourcedTask => ({
    task: { type: 'shell', parameters: { cmd: 'true' }, roles: ['compute'], ...task } as TaskDefinition,
    source: 'xenserver',
  })
  const models = { settings: { xenserver: { himn: { value: true } }, common: { debug: { value: false } } } }
  const tasks = [
    t({ id: 'first' }),
    t({ id: 'debug-only', requires: ['first'], condition: 'settings:common.debug.value == true' }),
    t({
      id: 'himn',
      requires: ['debug-only'],
      condition: "settings:xenserver.himn.value == true and not ('x' in 'abc')",
    }),
    t({ id: 'on-change', requires: ['himn'], condition: 'changed(settings:common.debug.value)' }),
  ]
  const { plan } = buildExecutionPlan({ tasks, nodes, models })
  const st = (k: string) => plan.tasks.find((x) => x.key === k)
  assert.equal(st('cmp1/debug-only')?.skipReason, 'condition "settings:common.debug.value == true" is false')
  assert.equal(st('cmp1/himn')?.skipReason, undefined)
  assert.equal(st('cmp1/on-change')?.skipReason, undefined) // no previous deployment: changed
  const rec = new Recorder()
  const r = await runPlan(plan, rec.runner)
  assert.equal(r.status, 'ready')
  assert.ok(!rec.starts.includes('cmp1/debug-only'))
  assert.ok(rec.at('end cmp1/first') < rec.at('start cmp1/himn')) // edges kept through the skipped task

  const same = buildExecutionPlan({ tasks, nodes, models, previous: { digests: new Map(), models } }).plan
  assert.equal(
    same.tasks.find((x) => x.key === 'cmp1/on-change')?.skipReason,
    'condition "changed(settings:common.debug.value)" is false',
  )
})

test('cross-depends: policy all waits for every matching node, any for one; cross-depended-by adds outgoing edges', () => {
  const t = (task: Partial<TaskDefinition>): SourcedTask => ({
    task: { type: 'shell', parameters: { cmd: 'true' }, ...task } as TaskDefinition,
    source: 'p',
  })
  const { plan } = buildExecutionPlan({
    tasks: [
      t({ id: 'db', roles: ['controller', 'primary-controller'] }),
      t({ id: 'all', roles: ['compute'], 'cross-depends': [{ name: 'db', role: ['/.*controller/'] }] }),
      t({ id: 'any', roles: ['compute'], 'cross-depends': [{ name: 'db', role: 'controller', policy: 'any' }] }),
      t({ id: 'early', roles: ['cinder'], 'cross-depended-by': [{ name: 'db', role: 'primary-controller' }] }),
    ],
    nodes,
  })
  const idx = (k: string) => plan.tasks.findIndex((x) => x.key === k)
  const keysOf = (is: number[]) => is.map((i) => plan.tasks[i].key).sort()
  assert.deepEqual(keysOf(plan.tasks[idx('cmp1/all')].requires), ['ctl1/db', 'ctl2/db', 'ctl3/db'])
  assert.deepEqual(plan.tasks[idx('cmp1/any')].requiresAny.map(keysOf), [['ctl2/db', 'ctl3/db']])
  assert.deepEqual(keysOf(plan.tasks[idx('ctl1/db')].requires), ['stor1/early'])
})

test('redeploy: only tasks whose inputs changed run, plus reexecute_on deploy_changes; force runs all', () => {
  const t = (task: Partial<TaskDefinition>): SourcedTask => ({
    task: { type: 'shell', roles: ['compute'], ...task } as TaskDefinition,
    source: 'p',
  })
  const tasks = (cmd: string) => [
    t({ id: 'a', parameters: { cmd: 'a' } }),
    t({ id: 'b', parameters: { cmd }, requires: ['a'] }),
    t({ id: 'c', parameters: { cmd: 'c', reads: ['settings:x.value'] }, requires: ['b'] }),
    t({ id: 'd', parameters: { cmd: 'd' }, reexecute_on: ['deploy_changes'] }),
  ]
  const first = buildExecutionPlan({ tasks: tasks('b1'), nodes, models: { settings: { x: { value: 1 } } } }).plan
  const digests = new Map(first.tasks.filter((x) => x.digest).map((x) => [x.key, x.digest as string]))
  const again = (cmd: string, x: number, force = false) =>
    buildExecutionPlan({
      tasks: tasks(cmd),
      nodes,
      models: { settings: { x: { value: x } } },
      previous: { digests },
      force,
    })
      .plan.tasks.filter((p) => p.node === 'cmp1' && !p.skipReason)
      .map((p) => p.id)
  assert.deepEqual(again('b1', 1), ['d'])
  assert.deepEqual(again('b2', 1), ['b', 'd'])
  assert.deepEqual(again('b1', 2), ['c', 'd'])
  assert.deepEqual(again('b1', 1, true), ['a', 'b', 'c', 'd'])
})
