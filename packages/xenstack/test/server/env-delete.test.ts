// Issue 11: `DELETE /environments/:env` forgets what the engine remembers of the environment (deployment history,
// redeploy digests), as `xenstack env delete` does — so a new environment of the same name starts with a first
// deploy. On both state-store backends, with a real deploy on the local executor.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { BACKENDS } from '../state/databases.js'
import { eventually, recordTestRelease, testServer } from './helpers.js'

const tmp = scratchDirs()

for (const backend of BACKENDS) {
  test(`${backend}: deleting an environment over the API clears its deployment history and redeploy digests`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-envdel-'))
    if (!s) return
    const work = tmp('xenstack-envdel-work-')
    recordTestRelease(s.state, 'deltest', [{ id: 'hello', cmd: `echo hello >> ${work}/hello.out` }])
    const req = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) => {
      const res = await s.app.inject({ method, url: `/api/v1${url}`, headers: s.auth, payload: payload as object })
      return { status: res.statusCode, body: res.body ? res.json() : undefined, raw: res.body }
    }
    const env = {
      name: 'del1',
      release: 'deltest',
      nodes: [{ name: 'local1', roles: ['compute'], data: { local: true } }],
    }
    assert.equal((await req('POST', '/environments', env)).status, 201)
    const started = await req('POST', '/environments/del1/deployments', {})
    assert.equal(started.status, 202, started.raw)
    const done = await eventually(async () => {
      const h = await req('GET', '/environments/del1/deployments')
      return h.body.length === 1 && h.body[0].status !== 'running' ? h.body[0] : undefined
    }, 'deployment of del1 finished')
    assert.equal(done.status, 'ready', JSON.stringify(done))
    assert.equal(s.context.engine.digests('del1').size, 1, 'the successful task left its redeploy digest')

    assert.equal((await req('DELETE', '/environments/del1')).status, 204)
    assert.equal(s.context.engine.digests('del1').size, 0)
    assert.equal(s.context.engine.latestDeployment('del1'), undefined)
    // deleting what is not there names it
    const again = await req('DELETE', '/environments/del1')
    assert.equal(again.status, 404, again.raw)
    assert.match(again.raw, /del1/)

    // re-created under the same name: no history, and its deploy runs the task again (not skipped as done)
    const recreated = await req('POST', '/environments', env)
    assert.equal(recreated.status, 201, recreated.raw)
    assert.equal(recreated.body.lastDeployment, null)
    assert.deepEqual((await req('GET', '/environments/del1/deployments')).body, [])
    const dry = await req('POST', '/environments/del1/deployments', { dryRun: true })
    assert.equal(dry.status, 200, dry.raw)
    assert.deepEqual(
      dry.body.nodes[0].tasks.map((x: { task: string; action: string }) => [x.task, x.action]),
      [['hello', 'run']],
    )
  })
}
