// Node candidates of a pool over the API, on both backends: a bad pool name is refused naming the field, an unknown
// pool is a 404 naming it, and a simulated pool that is not a lab's offers none (XAPI does not tell its VMs' SSH
// access). A lab's hosts as candidates, added through the Nodes page, are in test/web/ui-lab.test.ts (real lab).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { startSimServer } from '@xenstack/xapi-sim'
import { BACKENDS } from '../state/databases.js'
import { testServer } from './helpers.js'

const tmp = scratchDirs()
const PASSWORD = 'Cand-S3cret-Passw0rd'

for (const backend of BACKENDS) {
  test(`${backend}: node candidates — bad name refused on its field, unknown pool 404, a plain pool has none`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-candidates-'))
    if (!s) return
    const sim = await startSimServer({ hosts: 1, vms: 2, password: PASSWORD })
    t.after(() => sim.close())
    const req = async (method: 'GET' | 'POST', url: string, payload?: object) => {
      const res = await s.app.inject({ method, url: `/api/v1${url}`, headers: s.auth, payload })
      return { status: res.statusCode, body: res.body ? res.json() : undefined, raw: res.body }
    }

    const bad = await req('GET', '/pools/BAD%20NAME/node-candidates')
    assert.equal(bad.status, 400, bad.raw)
    assert.equal(bad.body.field, 'params.pool', bad.raw)

    const unknown = await req('GET', '/pools/nopool/node-candidates')
    assert.equal(unknown.status, 404, unknown.raw)
    assert.match(unknown.raw, /nopool/)

    const added = await req('POST', '/pools', { name: 'plain1', url: sim.url, username: 'root', password: PASSWORD })
    assert.equal(added.status, 201, added.raw)
    assert.equal(added.body.status, 'ready', added.raw)
    const none = await req('GET', '/pools/plain1/node-candidates')
    assert.equal(none.status, 200, none.raw)
    assert.deepEqual(none.body, [])
  })
}
