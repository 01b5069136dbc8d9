import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StateStore } from '../../src/state/store.js'
import { EngineStore } from '../../src/engine/store.js'
import { deployEnvironment, resumeEnvironment, type DeployableEnvironment } from '../../src/engine/deployment.js'
import type { TaskDefinition } from '../../src/engine/graph.js'
import type { NodeExecutor, ResourceReport, ResourceVerbs } from '../../src/engine/ports.js'
import type { NativeTask } from '../../src/engine/tasks.js'
import { TestLocalExecutor } from './local-exec.js'

function setup(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-engine-deploy-'))
  const state = StateStore.open({ dataDir: dir })
  t.after(() => {
    state.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { dir, store: new EngineStore(state.db) }
}

/** A file resource with node access's check/apply contract (content only), for native tasks in these tests. */
interface FileRes {
  id: string
  path: string
  content: string
}
const fileVerbs: ResourceVerbs = {
  async plan(exec: NodeExecutor, resources: readonly unknown[]): Promise<ResourceReport[]> {
    const out: ResourceReport[] = []
    for (const r of resources as FileRes[]) {
      const cur = await exec.get(r.path).then(
        (b) => b.toString(),
        () => null,
      )
      out.push({
        id: r.id,
        inSync: cur === r.content,
        diff: cur === r.content ? [] : [`- ${cur ?? '(absent)'}`, `+ ${r.content}`],
      })
    }
    return out
  },
  async apply(exec: NodeExecutor, resources: readonly unknown[]) {
    const entries: ResourceReport[] = []
    for (const [k, p] of (await fileVerbs.plan(exec, resources)).entries()) {
      const r = (resources as FileRes[])[k]
      if (!p.inSync) await exec.put(r.path, r.content)
      entries.push({ id: p.id, status: p.inSync ? 'unchanged' : 'changed', diff: p.diff })
    }
    return { entries, ok: true }
  },
}

const shell = (id: string, cmd: string, extra: Partial<TaskDefinition> = {}): TaskDefinition => ({
  id,
  type: 'shell',
  roles: ['compute'],
  parameters: { cmd, retries: 0, timeout: 30 },
  ...extra,
})

test('shell tasks run in the synced plugin scripts dir; a failure carries node, task, command, exit code and the last 40 lines', async (t) => {
  const { dir, store } = setup(t)
  const scripts = join(dir, 'plugin-scripts')
  mkdirSync(scripts)
  writeFileSync(join(scripts, 'hello.sh'), '#!/bin/sh\necho hello from $(pwd)\n', { mode: 0o755 })
  const remote = join(dir, 'node-plugins', 'xenserver-1.0')
  const env: DeployableEnvironment = {
    name: 'env1',
    tasks: [
      { task: shell('hello', './hello.sh > hello.out'), source: 'xenserver' },
      {
        task: shell('noisy', 'for i in $(seq 1 100); do echo line $i; done; echo boom >&2; exit 7', {
          requires: ['hello'],
        }),
        source: 'xenserver',
      },
      { task: shell('after', 'true', { requires: ['noisy'] }), source: 'xenserver' },
    ],
    nodes: [{ name: 'cmp1', roles: ['compute'] }],
    models: {},
    scripts: new Map([['xenserver', { localDir: scripts, remoteDir: remote }]]),
    access: { executor: (n) => new TestLocalExecutor(n) },
  }
  const r = await deployEnvironment(store, env)
  assert.equal(r.kind, 'deployment')
  if (r.kind !== 'deployment') return
  const s = r.summary
  assert.equal(s.status, 'error')
  assert.deepEqual(s.nodes, [{ name: 'cmp1', status: 'error' }])
  assert.deepEqual(s.tasks, { total: 3, succeeded: 1, failed: 2, skipped: 0 })
  assert.equal(readFileSync(join(remote, 'hello.out'), 'utf8').trim(), `hello from ${remote}`)
  const e = s.errors[0]
  assert.equal(e.node, 'cmp1')
  assert.equal(e.task, 'noisy')
  assert.equal(e.exitCode, 7)
  assert.match(e.step ?? '', /seq 1 100/)
  assert.equal(e.tail?.length, 40)
  assert.equal(e.tail?.[0], 'line 62')
  assert.equal(e.tail?.[39], 'boom')
  // History is in the store: the failed task's output tail and the dependent's reason.
  const rows = store.tasks(s.deployment)
  assert.match(rows.find((x) => x.task === 'noisy')?.output_tail ?? '', /line 100\nboom$/)
  assert.equal(rows.find((x) => x.task === 'after')?.status, 'dep_failed')
})

test('dry run plans every change and changes nothing; deploy applies; the second deploy changes nothing', async (t) => {
  const { dir, store } = setup(t)
  const target = join(dir, 'nova.conf')
  const natives = new Map<string, NativeTask>([
    [
      'nova-config',
      {
        resources: (ctx) => [
          {
            id: `file ${target}`,
            path: target,
            content: `[xenserver]\nconnection_url=${String((ctx.settings.xen as { url: string }).url)}\n`,
          },
        ],
      },
    ],
  ])
  const env = (url: string): DeployableEnvironment => ({
    name: 'env2',
    tasks: [
      {
        task: {
          id: 'nova-config',
          type: 'native',
          roles: ['compute'],
          parameters: { reads: ['settings:xen.url'] },
        },
        source: 'xenserver',
      },
      { task: shell('skipped-one', 'touch never', { condition: "settings:xen.url == 'nope'" }), source: 'xenserver' },
    ],
    nodes: [{ name: 'cmp1', roles: ['compute'] }],
    models: { settings: { xen: { url: url } } },
    natives,
    access: { executor: (n) => new TestLocalExecutor(n), resources: fileVerbs },
  })
  const dry = await deployEnvironment(store, env('http://a'), { dryRun: true })
  assert.equal(dry.kind, 'dry-run')
  if (dry.kind !== 'dry-run') return
  assert.equal(existsSync(target), false)
  assert.equal(store.latestDeployment('env2'), undefined)
  const tasks = dry.plan.nodes[0].tasks
  assert.deepEqual(
    tasks.map((x) => `${x.task}:${x.action}`),
    ['nova-config:run', 'skipped-one:skip'],
  )
  assert.match(tasks[1].reason ?? '', /condition .* is false/)
  assert.equal(dry.plan.changes, 1)
  assert.match(tasks[0].changes?.[0].diff ?? '', /\+ \[xenserver\]/)

  const first = await deployEnvironment(store, env('http://a'))
  assert.ok(first.kind === 'deployment' && first.summary.status === 'ready' && first.summary.changes === 1)
  assert.equal(readFileSync(target, 'utf8'), '[xenserver]\nconnection_url=http://a\n')
  // Forced redeploy: everything runs again, nothing changes.
  const again = await deployEnvironment(store, env('http://a'), { force: true })
  assert.ok(again.kind === 'deployment')
  assert.equal(again.summary.changes, 0)
  assert.equal(again.summary.tasks.succeeded, 1)
  const dry2 = await deployEnvironment(store, env('http://a'), { dryRun: true, force: true })
  assert.ok(dry2.kind === 'dry-run' && dry2.plan.changes === 0)
})

test('redeploy re-runs only the tasks whose inputs changed, plus reexecute_on deploy_changes; --force runs all', async (t) => {
  const { dir, store } = setup(t)
  const marks = join(dir, 'marks')
  const mark = (id: string) => `echo ${id} >> ${marks}`
  const env = (value: string, cmdB = mark('b')): DeployableEnvironment => ({
    name: 'env3',
    tasks: [
      { task: shell('a', mark('a')), source: 'p' },
      { task: shell('b', cmdB, { requires: ['a'] }), source: 'p' },
      {
        task: shell('c', mark('c'), { requires: ['b'], condition: "settings:x.value != 'never'" }),
        source: 'p',
      },
      { task: shell('d', mark('d'), { reexecute_on: ['deploy_changes'] }), source: 'p' },
    ],
    nodes: [
      { name: 'cmp1', roles: ['compute'] },
      { name: 'cmp2', roles: ['compute'] },
    ],
    models: { settings: { x: { value } } },
    access: { executor: (n) => new TestLocalExecutor(n) },
  })
  const ran = () => {
    const lines = existsSync(marks) ? readFileSync(marks, 'utf8').split('\n').filter(Boolean) : []
    rmSync(marks, { force: true })
    return lines.sort().join(',')
  }
  const deploy = async (e: DeployableEnvironment, force = false) => {
    const r = await deployEnvironment(store, e, { force })
    assert.ok(r.kind === 'deployment' && r.summary.status === 'ready', JSON.stringify(r))
    return r.kind === 'deployment' ? r.summary : undefined
  }
  await deploy(env('one'))
  assert.equal(ran(), 'a,a,b,b,c,c,d,d')
  const s2 = await deploy(env('one'))
  assert.equal(ran(), 'd,d')
  assert.equal(s2?.tasks.skipped, 6)
  await deploy(env('two')) // c reads settings:x.value through its condition
  assert.equal(ran(), 'c,c,d,d')
  await deploy(env('two', `${mark('b')}; true`)) // b's definition changed
  assert.equal(ran(), 'b,b,d,d')
  await deploy(env('two'), true)
  assert.equal(ran(), 'a,a,b,b,c,c,d,d')
})

test('resume after a failure re-runs the failed task and what depended on it, not what succeeded', async (t) => {
  const { dir, store } = setup(t)
  const marks = join(dir, 'marks')
  const flag = join(dir, 'fixed')
  const env: DeployableEnvironment = {
    name: 'env4',
    tasks: [
      { task: shell('a', `echo a >> ${marks}`), source: 'p' },
      { task: shell('b', `echo b >> ${marks}; test -e ${flag}`, { requires: ['a'] }), source: 'p' },
      { task: shell('c', `echo c >> ${marks}`, { requires: ['b'] }), source: 'p' },
    ],
    nodes: [{ name: 'cmp1', roles: ['compute'] }],
    models: {},
    access: { executor: (n) => new TestLocalExecutor(n) },
  }
  const first = await deployEnvironment(store, env)
  assert.ok(first.kind === 'deployment' && first.summary.status === 'error')
  writeFileSync(flag, '')
  const resumed = await resumeEnvironment(store, env)
  assert.equal(resumed.status, 'ready')
  assert.equal(resumed.deployment, first.kind === 'deployment' ? first.summary.deployment : -1)
  assert.equal(readFileSync(marks, 'utf8'), 'a\nb\nb\nc\n')
  const hist = store.history(resumed.deployment).map((h) => h.status)
  assert.deepEqual(hist.filter((s) => s === 'failed').length, 1)
})

test('upload_file, copy_files and sync tasks; progress is weighted by expected durations and reaches 100', async (t) => {
  const { dir, store } = setup(t)
  const src = join(dir, 'src')
  mkdirSync(join(src, 'sub'), { recursive: true })
  writeFileSync(join(src, 'a.txt'), 'A')
  writeFileSync(join(src, 'sub', 'b.sh'), '#!/bin/sh\n', { mode: 0o755 })
  const out = join(dir, 'node')
  const env: DeployableEnvironment = {
    name: 'env5',
    tasks: [
      {
        task: {
          id: 'up',
          type: 'upload_file',
          roles: ['compute'],
          parameters: { path: join(out, 'up', 'cfg.yaml'), data: 'x: 1\n' },
        },
        source: 'p',
      },
      {
        task: {
          id: 'copy',
          type: 'copy_files',
          roles: ['compute'],
          requires: ['up'],
          parameters: { files: [{ src: join(src, 'a.txt'), dst: join(out, 'copy', 'a.txt') }], permissions: '0600' },
        },
        source: 'p',
      },
      {
        task: {
          id: 'sync',
          type: 'sync',
          roles: ['compute'],
          requires: ['copy'],
          parameters: { src, dst: join(out, 'sync') },
        },
        source: 'p',
      },
    ],
    nodes: [{ name: 'cmp1', roles: ['compute'] }],
    models: {},
    access: { executor: (n) => new TestLocalExecutor(n) },
  }
  const progress: number[] = []
  const r = await deployEnvironment(store, env, {
    onEvent: (e) => {
      if (e.type === 'progress') progress.push(e.progress)
    },
  })
  assert.ok(r.kind === 'deployment' && r.summary.status === 'ready', JSON.stringify(r))
  assert.equal(readFileSync(join(out, 'up', 'cfg.yaml'), 'utf8'), 'x: 1\n')
  assert.equal(readFileSync(join(out, 'copy', 'a.txt'), 'utf8'), 'A')
  assert.equal(statSync(join(out, 'copy', 'a.txt')).mode & 0o777, 0o600)
  assert.equal(readFileSync(join(out, 'sync', 'a.txt'), 'utf8'), 'A')
  assert.equal(statSync(join(out, 'sync', 'sub', 'b.sh')).mode & 0o777, 0o755)
  // Default expected durations: upload_file 1 s, copy_files 1 s, sync 5 s → 1/7, 2/7, 7/7.
  assert.deepEqual(progress, [14.3, 28.6, 100])
  // Learned durations replace the defaults for the next plan.
  const learned = store.durations()
  assert.deepEqual([...learned.keys()].sort(), ['copy', 'sync', 'up'])
})
