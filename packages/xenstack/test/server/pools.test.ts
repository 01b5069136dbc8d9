// Pools through the API, on both backends: a simulated pool added by URL and credentials is discovered (hosts,
// VMs, networks, SRs) and kept current by XAPI events — a VM renamed through XAPI shows up renamed, and the
// pool's event stream says so; the password is never in a response; wrong credentials are reported.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { startSimServer } from '@xenstack/xapi-sim'
import { Xapi } from '@xenstack/xenapi'
import { BACKENDS } from '../state/databases.js'
import { eventually, openEvents, testServer } from './helpers.js'

const tmp = scratchDirs()
const PASSWORD = 'Pool-S3cret-Passw0rd'

for (const backend of BACKENDS) {
  test(`${backend}: a pool is discovered through XAPI and kept current by its events`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-server-'))
    if (!s) return
    const sim = await startSimServer({ hosts: 2, vms: 3, password: PASSWORD })
    t.after(() => sim.close())
    await s.app.listen({ host: '127.0.0.1', port: 0 })
    const addr = s.app.server.address()
    const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/api/v1`
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method,
        headers: { ...s.auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      const raw = await res.text()
      assert.equal(raw.includes(PASSWORD), false, `${method} ${path} answered with the password`)
      return { status: res.status, body: raw ? JSON.parse(raw) : undefined, raw }
    }

    const bad = await api('POST', '/pools', { name: 'wrong', url: sim.url, username: 'root', password: 'nope' })
    assert.equal(bad.status, 201, bad.raw)
    assert.equal(bad.body.status, 'error')
    assert.match(bad.body.error, /cannot log in as root/)

    const added = await api('POST', '/pools', { name: 'sim1', url: sim.url, username: 'root', password: PASSWORD })
    assert.equal(added.status, 201, added.raw)
    assert.equal(added.body.password, '********')
    assert.equal(added.body.status, 'ready', added.raw)
    assert.equal(
      (await api('POST', '/pools', { name: 'sim1', url: sim.url, username: 'r', password: 'p' })).status,
      409,
    )

    const pool = (await api('GET', '/pools/sim1')).body
    const x = new Xapi({ url: sim.url, username: 'root', password: PASSWORD })
    t.after(() => x.close())
    const hosts = Object.values(await x.host.get_all_records()).map((h: any) => h.name_label)
    const vms = Object.entries(await x.VM.get_all_records()).filter(
      ([, v]: [string, any]) => !v.is_a_template && !v.is_control_domain && !v.is_a_snapshot,
    )
    assert.deepEqual(pool.inventory.hosts.map((h: any) => h.name).sort(), hosts.sort())
    assert.deepEqual(
      pool.inventory.vms.map((v: any) => v.uuid).sort(),
      vms.map(([, v]: [string, any]) => v.uuid).sort(),
    )
    assert.ok(pool.inventory.networks.length > 0)
    assert.ok(pool.inventory.srs.length > 0)

    // A change made through XAPI reaches the inventory and the pool's event stream.
    const events = await openEvents(`${base}/pools/sim1/events`, s.auth)
    t.after(() => events.close())
    await events.until((es) => es.some((e) => e.event === 'snapshot' && e.data.status === 'ready'))
    const [ref] = vms[0]
    await x.VM.set_name_label(ref, 'renamed-by-xapi')
    await events.until((es) => es.some((e) => e.event === 'update' && e.data.ref === ref))
    await eventually(
      async () => (await api('GET', '/pools/sim1')).body.inventory.vms.some((v: any) => v.name === 'renamed-by-xapi'),
      'the renamed VM in the inventory',
    )

    // A pool recorded by another process (lab up, the CLI) after the server started is discovered on first read.
    s.state.pools.add({ name: 'later', url: sim.url, username: 'root', password: PASSWORD })
    const later = await api('GET', '/pools/later')
    assert.equal(later.body.status, 'ready', later.raw)
    assert.equal(later.body.inventory.hosts.length, hosts.length)
    assert.equal((await api('DELETE', '/pools/later')).status, 204)

    const list = await api('GET', '/pools')
    assert.deepEqual(
      list.body.map((p: any) => [p.name, p.status]),
      [
        ['sim1', 'ready'],
        ['wrong', 'error'],
      ],
    )
    // A pool in use by a node cannot be removed; once free it can.
    await api('POST', '/environments', {
      name: 'e1',
      nodes: [{ name: 'n1', roles: ['compute'], data: { pool: 'sim1' } }],
    })
    const refused = await api('DELETE', '/pools/sim1')
    assert.equal(refused.status, 409, refused.raw)
    assert.match(refused.body.message, /e1\/n1/)
    assert.equal((await api('DELETE', '/environments/e1')).status, 204)
    assert.equal((await api('DELETE', '/pools/sim1')).status, 204)
    assert.equal((await api('GET', '/pools/sim1')).status, 404)
    // Nothing stored in plain text either.
    const rows = JSON.stringify(s.state.db.prepare('SELECT * FROM pools').all())
    assert.equal(rows.includes(PASSWORD), false)
  })
}
