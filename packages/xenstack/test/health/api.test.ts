/**
 * The REST API in fuel-ostf's shape, through Fastify's inject and through a real HTTP listen: test sets and tests
 * of an environment (disabled ones with the reason), start a run, poll it, the conflict on a second active run,
 * stop, restart, last runs, and the errors a client gets for bad bodies and unknown things.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { HealthRunner, HealthStore, type HealthTest } from '../../src/health/index.js'
import { registerHealthRoutes } from '../../src/health/api.js'

const scratch = scratchDirs()

function catalog(gate: Promise<void>): HealthTest<object>[] {
  const base = { description: 'synthetic', duration: '1 s', steps: ['check it'] }
  return [
    { ...base, id: 'api.sanity.ok', testset: 'sanity', title: 'Always passes', run: async () => {} },
    {
      ...base,
      id: 'api.sanity.fails',
      testset: 'sanity',
      title: 'Always fails',
      run: async (ctx) => ctx.step(1, () => ctx.fail('a route', 'none', [{ label: 'ip route', value: '' }])),
    },
    {
      ...base,
      id: 'api.smoke.slow',
      testset: 'smoke',
      title: 'Waits until told or stopped',
      run: async (ctx) =>
        Promise.race([gate, new Promise<void>((_, reject) => ctx.signal.addEventListener('abort', reject))]),
    },
    { ...base, id: 'api.ha.one', testset: 'ha', title: 'Needs HA', run: async () => {} },
  ]
}

async function app() {
  const state = StateStore.open({ dataDir: scratch('health-api-') })
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const runner = new HealthRunner<object>({
    store: new HealthStore(state),
    catalog: catalog(gate),
    describe: () => ({ tags: new Set(['xenserver']), releaseVersion: 'mitaka-9.0' }),
    open: async () => ({ env: {}, close: async () => {} }),
  })
  const fastify = Fastify()
  await fastify.register((instance) =>
    registerHealthRoutes(instance, {
      runner,
      environmentName: (k) => (k === 'env1' || k === 'id-1' ? 'env1' : undefined),
    }),
  )
  return { fastify, runner, release }
}

async function until<T>(get: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await get()
    if (ok(v)) return v
    if (Date.now() > end) throw new Error(`condition not met in time; last value ${JSON.stringify(v)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('fuel-ostf API through inject: sets, tests, runs, conflict, stop, restart, last, errors', async () => {
  const { fastify, runner, release } = await app()
  try {
    const sets = await fastify.inject({ method: 'GET', url: '/v1/testsets/env1' })
    assert.equal(sets.statusCode, 200)
    const setIds = sets.json().map((s: { id: string }) => s.id)
    assert.deepEqual(setIds, ['sanity', 'smoke', 'cloudvalidation', 'configuration'], 'ha and tests_platform need tags')
    assert.ok(sets.json().every((s: { name: string }) => typeof s.name === 'string' && s.name))

    const tests = (await fastify.inject({ method: 'GET', url: '/v1/tests/env1' })).json()
    assert.deepEqual(Object.keys(tests[0]).slice(0, 9), [
      'id',
      'testset',
      'name',
      'description',
      'duration',
      'message',
      'step',
      'status',
      'taken',
    ])
    const ha = tests.find((t: { id: string }) => t.id === 'api.ha.one')
    assert.equal(ha.status, 'disabled')
    assert.match(ha.message, /needs deployment tags "ha"/)
    assert.equal(tests.find((t: { id: string }) => t.id === 'api.sanity.ok').status, null, 'never run')

    const post = await fastify.inject({
      method: 'POST',
      url: '/v1/testruns',
      payload: [
        { testset: 'sanity', metadata: { cluster_id: 'id-1', ostf_os_access_creds: { ostf_os_password: 'pw-x' } } },
        { testset: 'smoke', tests: ['api.smoke.slow'], metadata: { cluster_id: 'env1', config: {} } },
      ],
    })
    assert.equal(post.statusCode, 200)
    const [sanity, smoke] = post.json()
    assert.deepEqual(Object.keys(sanity), [
      'id',
      'testset',
      'meta',
      'cluster_id',
      'status',
      'started_at',
      'ended_at',
      'tests',
    ])
    assert.equal(sanity.cluster_id, 'env1')
    assert.deepEqual(sanity.meta, { cluster_id: 'id-1' }, 'credentials are not stored')

    const done = await until(
      async () => (await fastify.inject({ method: 'GET', url: `/v1/testruns/${sanity.id}` })).json(),
      (r) => r.status === 'finished',
    )
    assert.deepEqual(
      done.tests.map((t: { id: string; status: string }) => [t.id, t.status]),
      [
        ['api.sanity.ok', 'success'],
        ['api.sanity.fails', 'failure'],
      ],
    )
    assert.equal(done.tests[1].message, 'Step 1 failed: expected a route; found none')
    assert.equal(done.tests[1].step, 1)

    const conflict = await fastify.inject({
      method: 'POST',
      url: '/v1/testruns',
      payload: [{ testset: 'smoke', metadata: { cluster_id: 'env1' } }],
    })
    assert.equal(conflict.statusCode, 409)
    assert.match(conflict.json().message, /smoke is already running on environment env1/)

    const stop = await fastify.inject({
      method: 'PUT',
      url: '/v1/testruns',
      payload: [{ id: smoke.id, status: 'stopped' }],
    })
    assert.equal(stop.statusCode, 200)
    assert.equal(stop.json()[0].status, 'stopped')
    assert.equal(stop.json()[0].tests[0].status, 'stopped')

    release()
    const restart = await fastify.inject({
      method: 'PUT',
      url: '/v1/testruns',
      payload: [{ id: smoke.id, status: 'restarted', tests: ['api.smoke.slow'] }],
    })
    assert.equal(restart.json()[0].status, 'running')
    await runner.wait(smoke.id)
    const last = (await fastify.inject({ method: 'GET', url: '/v1/testruns/last/env1' })).json()
    assert.deepEqual(
      last.map((r: { testset: string; status: string }) => [r.testset, r.status]),
      [
        ['sanity', 'finished'],
        ['smoke', 'finished'],
      ],
    )
    const all = (await fastify.inject({ method: 'GET', url: '/v1/testruns' })).json()
    assert.equal(all.length, 2)
    const afterTests = (await fastify.inject({ method: 'GET', url: '/v1/tests/env1' })).json()
    assert.equal(afterTests.find((t: { id: string }) => t.id === 'api.sanity.fails').status, 'failure')

    const bad = [
      [{ method: 'GET', url: '/v1/testsets/nope' }, 404, /environment nope does not exist/],
      [{ method: 'GET', url: '/v1/testruns/not-a-run' }, 404, /health run not-a-run does not exist/],
      [{ method: 'POST', url: '/v1/testruns', payload: [{ metadata: { cluster_id: 'env1' } }] }, 400, /"testset"/],
      [{ method: 'POST', url: '/v1/testruns', payload: [{ testset: 'sanity' }] }, 400, /metadata.cluster_id/],
      [
        { method: 'POST', url: '/v1/testruns', payload: [{ testset: 'bogus', metadata: { cluster_id: 'env1' } }] },
        404,
        /unknown test set "bogus"/,
      ],
      [
        { method: 'PUT', url: '/v1/testruns', payload: [{ id: smoke.id, status: 'paused' }] },
        400,
        /"stopped" or "restarted"/,
      ],
    ] as const
    for (const [req, code, msg] of bad) {
      const r = await fastify.inject(req as any)
      assert.equal(r.statusCode, code, `${req.method} ${req.url}: ${r.body}`)
      assert.match(r.json().message, msg)
    }
  } finally {
    await fastify.close()
  }
})

test('fuel-ostf API over a real HTTP listen', async () => {
  const { fastify, runner } = await app()
  try {
    const address = await fastify.listen({ host: '127.0.0.1', port: 0 })
    const post = await fetch(`${address}/v1/testruns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ testset: 'sanity', tests: ['api.sanity.ok'], metadata: { cluster_id: 'env1' } }]),
    })
    assert.equal(post.status, 200)
    const [run] = (await post.json()) as { id: string }[]
    await runner.wait(run!.id)
    const got = (await (await fetch(`${address}/v1/testruns/${run!.id}`)).json()) as {
      status: string
      tests: { id: string; status: string }[]
    }
    assert.equal(got.status, 'finished')
    assert.deepEqual(
      got.tests.map((t) => [t.id, t.status]),
      [
        ['api.sanity.ok', 'success'],
        ['api.sanity.fails', 'disabled'],
      ],
    )
  } finally {
    await fastify.close()
  }
})
