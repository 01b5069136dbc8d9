// Node candidates of a pool over the API, on both backends: a bad pool name is refused naming the field, an unknown
// pool is a 404 naming it, and a simulated pool that is not a lab's offers none (XAPI does not tell its VMs' SSH
// access). On a real lab (root): the pool its simulator serves offers the lab's compute VM and controller with their
// access records, and a node added with a candidate's data is accepted. The Nodes page's picker is driven in
// test/web/ui-lab.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { startSimServer } from '@xenstack/xapi-sim'
import { BACKENDS } from '../state/databases.js'
import { withLab } from '../../src/lab/index.js'
import { labPrerequisite } from '../node/helpers.js'
import { recordTestRelease, testServer } from './helpers.js'
import { createEnvironment } from '../../src/plugins/environment.js'

const tmp = scratchDirs()
const PASSWORD = 'Cand-S3cret-Passw0rd'

for (const backend of BACKENDS) {
  test(`${backend}: node candidates — bad name refused on its field, unknown pool 404, a plain pool has none`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-candidates-'))
    if (!s) return
    const sim = await startSimServer({ hosts: 1, vms: 2, password: PASSWORD })
    t.after(() => sim.close())
    const req = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
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
    // the pool's watcher stops before the simulator does (no reconnect warnings)
    assert.equal((await req('DELETE', '/pools/plain1')).status, 204)
  })
}

test("a lab's pool offers the lab's machines with their access records; one is added with that data", async (t) => {
  if (!(await labPrerequisite(t))) return
  const s = await testServer(t, 'sqlite', tmp('xenstack-candidates-lab-'))
  if (!s) return
  await withLab(
    { hosts: 1, controllers: 1, storageNode: false, httpProbePort: false, simulator: true },
    async (lab) => {
      const sim = lab.simulator!
      const req = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => {
        const res = await s.app.inject({ method, url: `/api/v1${url}`, headers: s.auth, payload })
        return { status: res.statusCode, body: res.body ? res.json() : undefined, raw: res.body }
      }
      const added = await req('POST', '/pools', {
        name: 'labpool',
        url: sim.url,
        username: 'root',
        password: sim.password,
      })
      assert.equal(added.body?.status, 'ready', added.raw)
      const got = await req('GET', '/pools/labpool/node-candidates')
      assert.equal(got.status, 200, got.raw)
      assert.equal(got.raw.includes(sim.password), false, 'no password in the candidates')
      const byName = Object.fromEntries(got.body.map((c: { name: string }) => [c.name, c]))
      assert.deepEqual(Object.keys(byName).sort(), ['compute-1', 'controller-1'])
      const compute = byName['compute-1']
      assert.equal(compute.kind, 'compute')
      assert.equal(compute.data.lab, lab.name)
      assert.equal(compute.data.pool, 'labpool')
      assert.equal(compute.data.vm, sim.refs.get('compute-1'))
      assert.deepEqual(compute.data.ssh, lab.host('compute-1').ssh)
      assert.equal(compute.data.dom0.host, sim.refs.get(compute.data.dom0.name))
      assert.deepEqual(compute.data.dom0.ssh, lab.host(compute.data.dom0.name).ssh)
      assert.equal(byName['controller-1'].data.vm, undefined, 'the controller is not a VM of the pool')

      recordEnv(s.state)
      const node = await req('POST', '/environments/candenv/nodes', {
        name: 'compute-1',
        roles: [],
        data: compute.data,
      })
      assert.equal(node.status, 201, node.raw)
      assert.deepEqual(s.state.environments.nodes('candenv')[0].data, compute.data)
      assert.equal((await req('DELETE', '/environments/candenv')).status, 204)
      assert.equal((await req('DELETE', '/pools/labpool')).status, 204)
    },
  )
})

function recordEnv(state: Parameters<typeof recordTestRelease>[0]): void {
  recordTestRelease(state, 'candrel', [{ id: 'noop', cmd: 'true' }])
  state.transaction(() => createEnvironment(state, { name: 'candenv', release: 'candrel', nodes: [] }))
}
