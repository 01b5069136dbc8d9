// Health progress on the event stream, on both backends: a run recorded and advanced in the health store (as a
// runner in any process does) reaches a client of /environments/{env}/health/events as `run` events, in order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import type { TestResult } from '../../src/health/types.js'
import { BACKENDS } from '../state/databases.js'
import { openEvents, recordTestRelease, testServer } from './helpers.js'

const tmp = scratchDirs()

const blank = (id: string): TestResult => ({
  id,
  testset: 'sanity',
  name: id,
  description: '',
  duration: '1 s',
  status: 'wait_running',
  message: '',
  step: null,
  taken: null,
  evidence: [],
  startedAt: null,
  endedAt: null,
})

for (const backend of BACKENDS) {
  test(`${backend}: the health API is mounted behind the token; health runs stream their progress`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-server-'), [], { health: true })
    if (!s) return
    recordTestRelease(s.state, 'hltest', [{ id: 'hello', cmd: 'true' }])
    const created = await s.app.inject({
      method: 'POST',
      url: '/api/v1/environments',
      headers: s.auth,
      payload: { name: 'h1', release: 'hltest' },
    })
    assert.equal(created.statusCode, 201, created.body)
    // The fuel-ostf API is mounted under /api/health, behind the same token.
    const sets = await s.app.inject({ method: 'GET', url: '/api/health/v1/testsets/h1', headers: s.auth })
    assert.equal(sets.statusCode, 200, sets.body)
    assert.ok(Array.isArray(sets.json()))
    assert.equal((await s.app.inject({ method: 'GET', url: '/api/health/v1/testsets/h1' })).statusCode, 401)
    const unknown = await s.app.inject({ method: 'GET', url: '/api/health/v1/tests/nope', headers: s.auth })
    assert.equal(unknown.statusCode, 404, unknown.body)
    await s.app.listen({ host: '127.0.0.1', port: 0 })
    const addr = s.app.server.address()
    const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/api/v1/environments/h1/health/events`
    const denied = await fetch(url)
    assert.equal(denied.status, 401)
    await denied.text()

    const events = await openEvents(url, s.auth)
    t.after(() => events.close())
    await events.until((es) => es.some((e) => e.event === 'snapshot'))
    assert.deepEqual(events.events[0].data, { environment: 'h1', runs: [] })

    const store = s.context.health.store
    const run = store.createRun({ environment: 'h1', testset: 'sanity', tests: [blank('a'), blank('b')] })
    await events.until((es) => es.some((e) => e.event === 'run' && e.data.id === run.id))
    store.updateTest(run.id, 'a', { status: 'running' })
    await events.until((es) => es.some((e) => e.event === 'run' && e.data.tests[0].status === 'running'))
    store.updateTest(run.id, 'a', { status: 'success' })
    store.updateTest(run.id, 'b', { status: 'failure', message: 'Step 2 failed: no route' })
    store.finishRun(run.id, 'finished')
    const all = await events.until((es) => es.some((e) => e.event === 'run' && e.data.status === 'finished'))
    const last = all.filter((e) => e.event === 'run').at(-1)!.data
    assert.deepEqual(
      last.tests.map((x: any) => [x.id, x.status]),
      [
        ['a', 'success'],
        ['b', 'failure'],
      ],
    )
    assert.equal(last.tests[1].message, 'Step 2 failed: no route')
  })
}
