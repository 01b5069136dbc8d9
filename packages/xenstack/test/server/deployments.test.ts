// Deployments through the API over real HTTP, on both state-store backends: a dry run changes and records
// nothing; a deploy on the local executor streams its events (task statuses, progress, output lines) to an SSE
// client; history, task logs; a graceful stop mid-deploy and a resume that finishes only what did not succeed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { BACKENDS } from '../state/databases.js'
import { eventually, openEvents, recordTestRelease, testServer, type SseEvent } from './helpers.js'

const tmp = scratchDirs()

const ended = (events: SseEvent[], deployment: number) =>
  events.find((e) => e.event === 'deployment' && e.data.deployment === deployment && e.data.status !== 'running')

for (const backend of BACKENDS) {
  test(`${backend}: deploy over HTTP — dry run, SSE events, history, task log, stop and resume`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-server-'))
    if (!s) return
    const work = tmp('xenstack-server-work-')
    const gate = join(work, 'gate')
    recordTestRelease(s.state, 'deptest', [
      { id: 'hello', cmd: `for i in 1 2 3; do echo line $i; done; echo hello >> ${work}/hello.out` },
      // Waits for the test to open the gate (or 60 s), so the stop lands while it runs.
      {
        id: 'slow',
        cmd: `i=0; while [ ! -e ${gate} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo slow >> ${work}/slow.out`,
        requires: ['hello'],
      },
      { id: 'after', cmd: `echo after >> ${work}/after.out`, requires: ['slow'] },
    ])
    await s.app.listen({ host: '127.0.0.1', port: 0 })
    const addr = s.app.server.address()
    const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${base}/api/v1${path}`, {
        method,
        headers: { ...s.auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      const text = await res.text()
      return { status: res.status, body: text ? JSON.parse(text) : undefined, raw: text }
    }
    const created = await api('POST', '/environments', {
      name: 'dep1',
      release: 'deptest',
      nodes: [{ name: 'local1', roles: ['compute'], data: { local: true } }],
    })
    assert.equal(created.status, 201, created.raw)

    // The event stream needs the token too, over real HTTP.
    const refused = await fetch(`${base}/api/v1/environments/dep1/events`)
    assert.equal(refused.status, 401)
    await refused.text()

    const dry = await api('POST', '/environments/dep1/deployments', { dryRun: true })
    assert.equal(dry.status, 200, dry.raw)
    assert.deepEqual(
      dry.body.nodes[0].tasks.map((x: any) => [x.task, x.action]),
      [
        ['hello', 'run'],
        ['slow', 'run'],
        ['after', 'run'],
      ],
    )
    assert.equal(existsSync(join(work, 'hello.out')), false, 'a dry run changes nothing')
    assert.deepEqual((await api('GET', '/environments/dep1/deployments')).body, [], 'and records nothing')

    const events = await openEvents(`${base}/api/v1/environments/dep1/events?access_token=${s.token}`)
    t.after(() => events.close())
    assert.equal(events.status, 200)
    assert.match(events.headers.get('content-type') ?? '', /text\/event-stream/)
    await events.until((es) => es.some((e) => e.event === 'snapshot'))

    const started = await api('POST', '/environments/dep1/deployments', {})
    assert.equal(started.status, 202, started.raw)
    const id = started.body.deployment as number
    assert.equal(id, 1)
    await events.until((es) =>
      es.some((e) => e.event === 'task' && e.data.task === 'slow' && e.data.status === 'running'),
    )
    // While it runs: a second deploy is refused, the environment says it is deploying.
    assert.equal((await api('POST', '/environments/dep1/deployments', {})).status, 409)
    assert.equal((await api('GET', '/environments/dep1')).body.deploying, true)
    // Graceful stop: the running task finishes, the one after it does not start.
    const stop = await api('POST', '/environments/dep1/deployments/stop')
    assert.equal(stop.status, 202, stop.raw)
    assert.deepEqual(stop.body, { deployment: 1, result: 'requested' })
    // No wait needed before opening the gate: the stop is in the store when the 202 comes, and the scheduler reads
    // the store's stop flag before it starts any task (besides its 300 ms poll).
    writeFileSync(gate, '')
    await events.until((es) => !!ended(es, 1))
    const first = ended(events.events, 1)!
    assert.ok(['stopped', 'partially_deployed'].includes(first.data.status), JSON.stringify(first.data))
    assert.equal(existsSync(join(work, 'slow.out')), true, 'the running task finished')
    assert.equal(existsSync(join(work, 'after.out')), false, 'the next task did not start')

    // What the stream carried for this deployment: statuses in order, progress, and the task's output lines.
    const mine = events.events.filter((e) => e.data?.deployment === 1)
    const hello = mine.filter((e) => e.event === 'task' && e.data.task === 'hello').map((e) => e.data.status)
    assert.deepEqual(hello, ['running', 'succeeded'])
    assert.ok(mine.some((e) => e.event === 'progress'))
    assert.deepEqual(
      mine.filter((e) => e.event === 'log' && e.data.task === 'hello').map((e) => e.data.line),
      ['line 1', 'line 2', 'line 3'],
    )
    const ids = events.events.map((e) => Number(e.id)).filter((n) => n > 0)
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
      'event ids increase',
    )

    // The task log: attempts and output (journal tail after the end).
    const log = await api('GET', '/deployments/1/nodes/local1/tasks/hello/log')
    assert.equal(log.status, 200, log.raw)
    assert.equal(log.body.status, 'succeeded')
    assert.deepEqual(log.body.output.slice(0, 3), ['line 1', 'line 2', 'line 3'])
    assert.equal((await api('GET', '/deployments/1/nodes/local1/tasks/nope/log')).status, 404)

    // Resume: only what did not succeed runs (hello and slow are not run again).
    const resumed = await api('POST', '/environments/dep1/deployments/resume')
    assert.equal(resumed.status, 202, resumed.raw)
    assert.equal(resumed.body.deployment, 1)
    await events.until((es) =>
      es.some((e) => e.event === 'deployment' && e.data.deployment === 1 && e.data.status === 'ready'),
    )
    await eventually(async () => (await api('GET', '/environments/dep1')).body.deploying === false, 'deploy ends')
    assert.equal(readFileSync(join(work, 'hello.out'), 'utf8'), 'hello\n')
    assert.equal(readFileSync(join(work, 'slow.out'), 'utf8'), 'slow\n')
    assert.equal(readFileSync(join(work, 'after.out'), 'utf8'), 'after\n')

    const detail = await api('GET', '/deployments/1')
    assert.equal(detail.body.status, 'ready')
    assert.deepEqual(
      detail.body.tasks.filter((x: any) => x.node === 'local1').map((x: any) => [x.task, x.status]),
      [
        ['hello', 'succeeded'],
        ['slow', 'succeeded'],
        ['after', 'succeeded'],
      ],
    )
    const history = await api('GET', '/environments/dep1/deployments')
    assert.deepEqual(
      history.body.map((d: any) => [d.id, d.status]),
      [[1, 'ready']],
    )
    assert.equal((await api('GET', '/environments/dep1')).body.status, 'operational')
    // Nothing left to stop.
    assert.deepEqual((await api('POST', '/environments/dep1/deployments/stop')).body, {
      deployment: 1,
      result: 'not-running',
    })
  })
}
