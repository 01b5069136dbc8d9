/**
 * The health-check framework on synthetic tests: statuses and step-numbered failures with evidence, disabled
 * tests (tags, release, not selected), bounded parallelism, one active run per set and environment, stop,
 * restart, runLast + baseline, and the run history kept in the state store (also across processes).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { Secret } from '../../src/node/secret.js'
import { ActiveRunError, HealthRunner, HealthStore, type HealthTest } from '../../src/health/index.js'

const scratch = scratchDirs()

interface Env {
  log: string[]
}

function setup(catalog: HealthTest<Env>[], opts: { concurrency?: number; tags?: string[] } = {}) {
  const state = StateStore.open({ dataDir: scratch('health-fw-') })
  const store = new HealthStore(state)
  let opens = 0
  let closes = 0
  const runner = new HealthRunner<Env>({
    store,
    catalog,
    concurrency: opts.concurrency,
    describe: () => ({ tags: new Set(opts.tags ?? ['xenserver', 'compute']), releaseVersion: 'mitaka-9.0' }),
    open: async () => {
      opens++
      return { env: { log: [] }, close: async () => void closes++ }
    },
  })
  return { state, store, runner, counts: () => ({ opens, closes }) }
}

const base = { testset: 'sanity', description: 'synthetic', duration: '1 s' }
const simple = (id: string, run: HealthTest<Env>['run'], extra: Partial<HealthTest<Env>> = {}): HealthTest<Env> => ({
  ...base,
  id,
  title: id,
  steps: ['first', 'second'],
  run,
  ...extra,
})

test('outcomes: success with warning, Step N failed with evidence, error, skipped, disabled with reasons', async () => {
  const password = new Secret('hunter2-very-secret')
  const { runner, state } = setup([
    simple('t.ok', async (ctx) => {
      await ctx.step(1, () => ctx.warn('dom0 / is 85 % full'))
    }),
    simple('t.fail', async (ctx) => {
      await ctx.step(1, () => undefined)
      await ctx.step(2, () =>
        ctx.fail('route 192.168.0.0/24 via 169.254.0.2', 'no route', [
          { label: 'ip route', value: `default via 10.0.0.1\npassword=${password.reveal()}` },
        ]),
      )
    }),
    simple('t.error', async (ctx) => {
      await ctx.step(1, () => {
        throw new Error('ssh: connection refused')
      })
    }),
    simple('t.skip', async (ctx) => ctx.skip('no storage network in this environment')),
    simple('t.ha', async () => {}, { deploymentTags: 'ha, neutron | nova_network' }),
    simple('t.future', async () => {}, { availableSince: '2030.1-12.0' }),
  ])
  const run = runner.start('env1', 'sanity')
  assert.equal(run.status, 'running')
  const done = await runner.wait(run.id)
  assert.equal(done.status, 'finished')
  const by = Object.fromEntries(done.tests.map((t) => [t.id, t]))
  assert.equal(by['t.ok']!.status, 'success')
  assert.equal(by['t.ok']!.message, 'warning: dom0 / is 85 % full')
  assert.equal(by['t.fail']!.status, 'failure')
  assert.equal(by['t.fail']!.message, 'Step 2 failed: expected route 192.168.0.0/24 via 169.254.0.2; found no route')
  assert.equal(by['t.fail']!.step, 2)
  assert.equal(by['t.fail']!.evidence[0]!.label, 'ip route')
  assert.match(String(by['t.fail']!.evidence[0]!.value), /password=\*\*\*/)
  assert.equal(by['t.error']!.status, 'error')
  assert.equal(by['t.error']!.message, 'Step 1: ssh: connection refused')
  assert.equal(by['t.skip']!.status, 'skipped')
  assert.equal(by['t.skip']!.message, 'no storage network in this environment')
  assert.equal(by['t.ha']!.status, 'disabled')
  assert.match(by['t.ha']!.message, /needs deployment tags "ha" and "neutron \| nova_network"/)
  assert.equal(by['t.future']!.status, 'disabled')
  assert.match(by['t.future']!.message, /available since release 2030.1-12.0 \(environment runs mitaka-9.0\)/)
  assert.ok(by['t.fail']!.taken !== null && by['t.fail']!.startedAt && by['t.fail']!.endedAt)
  // Nothing secret reached the database file.
  const raw = JSON.stringify(state.db.prepare('SELECT * FROM health_results').all())
  assert.ok(!raw.includes('hunter2-very-secret'))
  assert.match(by['t.ok']!.description, /Scenario:\n {2}1\. first\n {2}2\. second\nDuration: 1 s/)
})

test('independent tests run in parallel, bounded by the runner-wide limit', async () => {
  let running = 0
  let peak = 0
  // The first tests are held until three run at once (parallel by construction, not by a wall-clock bound); a
  // runner that ran them one by one would never open the gate, and the 30 s hang detector names what was seen.
  let openGate = () => {}
  const gate = new Promise<void>((resolve) => (openGate = resolve))
  const tests = Array.from({ length: 6 }, (_, i) =>
    simple(`p.${i}`, async () => {
      running++
      peak = Math.max(peak, running)
      if (running === 3) openGate()
      let hang: NodeJS.Timeout | undefined
      await Promise.race([
        gate,
        new Promise((_, reject) => {
          hang = setTimeout(() => reject(new Error(`never three tests at once (at most ${peak})`)), 30_000)
        }),
      ]).finally(() => clearTimeout(hang))
      // a turn of the event loop, so a runner that starts more than three finds these still running
      await new Promise((r) => setImmediate(r))
      running--
    }),
  )
  const { runner } = setup(tests, { concurrency: 3 })
  const done = await runner.wait(runner.start('env1', 'sanity').id)
  assert.deepEqual(
    done.tests.map((t) => `${t.status} ${t.message ?? ''}`.trim()),
    tests.map(() => 'success'),
  )
  assert.equal(peak, 3, 'three at a time, never more')
})

test('one active run per test set and environment; stop; restart; history', async () => {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const { runner, store, counts } = setup(
    [
      simple('s.wait', async (ctx) => {
        await ctx.step(
          1,
          () => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')))),
        )
      }),
      simple('s.gate', async () => gate),
    ],
    { concurrency: 1 },
  )
  const first = runner.start('env1', 'sanity')
  await waitFor(() => store.run(first.id).tests.some((t) => t.status === 'running'))
  assert.throws(() => runner.start('env1', 'sanity'), ActiveRunError)
  assert.throws(() => runner.start('env1', 'sanity'), /already running on environment env1/)
  // Another environment, or another set, is a separate slot.
  const other = runner.start('env2', 'sanity')
  const stopped = await runner.stop(first.id)
  assert.equal(stopped.status, 'stopped')
  assert.deepEqual(
    stopped.tests.map((t) => [t.id, t.status, t.message]),
    [
      ['s.wait', 'stopped', 'stopped by request'],
      ['s.gate', 'stopped', 'stopped by request'],
    ],
  )
  await runner.stop(other.id)
  release()
  assert.deepEqual(counts(), { opens: 2, closes: 2 })
  // The slot is free again; restart re-runs the chosen test of the stopped run.
  const again = runner.restart(first.id, ['s.gate'])
  assert.equal(again.id, first.id)
  const after = await runner.wait(first.id)
  assert.equal(after.status, 'finished')
  assert.deepEqual(
    after.tests.map((t) => t.status),
    ['stopped', 'success'],
  )
  const history = store.runs({ environment: 'env1' })
  assert.deepEqual(
    history.map((r) => r.id),
    [first.id],
  )
  assert.equal(store.lastRuns('env2')[0]!.id, other.id)
  assert.equal(store.runs().length, 2)
})

test('runLast tests run after the others and see their baseline taken before any test', async () => {
  const events: string[] = []
  const { runner } = setup(
    [
      simple('b.last', async (ctx) => void events.push(`last saw ${String(ctx.baseline)}`), {
        runLast: true,
        baseline: async () => {
          events.push('baseline')
          return 7
        },
      }),
      simple('b.a', async () => {
        await new Promise((r) => setTimeout(r, 50))
        events.push('a')
      }),
      simple('b.b', async () => void events.push('b')),
    ],
    { concurrency: 4 },
  )
  await runner.wait(runner.start('env1', 'sanity').id)
  assert.equal(events[0], 'baseline')
  assert.equal(events.at(-1), 'last saw 7')
  assert.deepEqual(events.slice(1, 3).sort(), ['a', 'b'])
})

test('selected tests only; the rest are disabled as not selected; unknown set is refused', async () => {
  const { runner } = setup([simple('x.one', async () => {}), simple('x.two', async () => {})])
  const done = await runner.wait(runner.start('env1', 'sanity', { tests: ['x.two'] }).id)
  assert.deepEqual(
    done.tests.map((t) => [t.id, t.status, t.message]),
    [
      ['x.one', 'disabled', 'not selected for this run'],
      ['x.two', 'success', ''],
    ],
  )
  assert.throws(() => runner.start('env1', 'nosuchset'), /unknown test set "nosuchset"/)
})

test('a run left running by a dead process is closed as stopped when the slot is asked for', async () => {
  const { runner, store, state } = setup([simple('o.one', async () => {})])
  const run = store.createRun({
    environment: 'env1',
    testset: 'sanity',
    tests: runner.plan('env1', 'sanity'),
  })
  const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!
  state.db.prepare('UPDATE health_runs SET pid = ? WHERE id = ?').run(dead, run.id)
  const next = runner.start('env1', 'sanity')
  await runner.wait(next.id)
  const old = store.run(run.id)
  assert.equal(old.status, 'stopped')
  assert.match(old.tests[0]!.message, /the process running it \(pid \d+\) ended/)
})

async function waitFor(cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('deployment tags: comma = and, | = or (binding tighter), case-insensitive; release comparison; environment tags', async () => {
  const { parseDeploymentTags, unmetTags, releaseAtLeast, environmentTags } = await import('../../src/health/index.js')
  assert.deepEqual(parseDeploymentTags('HA, neutron | nova_network'), [['ha'], ['neutron', 'nova_network']])
  assert.throws(() => parseDeploymentTags('ha, | neutron'), /group 2 \("\| neutron"\) needs tag names/)
  const tags = new Set(['ha', 'nova_network'])
  assert.deepEqual(unmetTags('ha, neutron | nova_network', tags), [])
  assert.deepEqual(unmetTags('ha, neutron, ceph | cinder', tags), ['neutron', 'ceph | cinder'])
  assert.equal(releaseAtLeast('mitaka-9.0', '2014.2-6.1'), true)
  assert.equal(releaseAtLeast('2014.2-6.1', 'mitaka-9.0'), false)
  assert.equal(releaseAtLeast('mitaka-9.0', 'mitaka-9.0'), true)
  const env = environmentTags({
    plugins: [{ name: 'xenserver', enabled: true }],
    components: [],
    cluster: { net_provider: 'neutron' },
    settings: { additional_components: { metadata: {}, ceilometer: { value: true }, sahara: { value: false } } },
    operatingSystem: 'Ubuntu',
    nodes: [{ roles: ['primary-controller'] }, { roles: ['controller'] }, { roles: ['compute'] }],
  })
  assert.deepEqual([...env].sort(), [
    'additional_components',
    'ceilometer',
    'compute',
    'controller',
    'ha',
    'neutron',
    'primary-controller',
    'ubuntu',
    'xenserver',
  ])
})
