// A node's network through the API, on both backends, against a simulated pool: the HIMN status of a compute VM
// before and after the integration's HimnAttacher attaches it (VIF plugged, MAC, xenstore MAC, the guest agent's
// address once it reports one), a node that is not a VM of a pool (no HIMN, said why); its NICs from XAPI and the
// logical networks assigned to them — saved into data.interfaces (the key the neutron agent task reads), every
// network on exactly one NIC, no unknown NIC, nothing on the HIMN NIC; the environment's virtual IPs; auth and bad
// input answered with the field.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { startSimServer, validateScenario } from '@xenstack/xapi-sim'
import { Xapi } from '@xenstack/xenapi'
import { HimnAttacher } from '../../src/integration/himn/attach.js'
import { assignmentsFrom } from '../../src/server/node-network.js'
import { BACKENDS } from '../state/databases.js'
import { testServer } from './helpers.js'

const tmp = scratchDirs()
const PASSWORD = 'Nic-Pool-S3cret'

const scenario = validateScenario(
  {
    name: 'node-network',
    pools: [
      {
        name: 'nn',
        hosts: [{ name: 'xs-1' }],
        networks: [
          { name: 'Pool-wide network associated with eth0', bridge: 'xenbr0', pifs: 'management' },
          { name: 'storage', bridge: 'xenbr1', pifs: 'all' },
        ],
        templates: 'none',
        compute_vm_per_host: false,
        vms: [
          {
            name: 'compute-vm',
            host: 'xs-1',
            power_state: 'Running',
            pv_drivers: true,
            networks: ['Pool-wide network associated with eth0', 'storage'],
          },
        ],
      },
    ],
  },
  'node-network test',
)

for (const backend of BACKENDS) {
  test(`${backend}: HIMN status and interface assignment of a node`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-node-network-'))
    if (!s) return
    const sim = await startSimServer({ scenario, password: PASSWORD })
    t.after(() => sim.close())
    const x = new Xapi({ url: sim.url, username: 'root', password: PASSWORD })
    t.after(() => x.close())
    const [vmRef] = Object.entries(await x.VM.get_all_records())
      .filter(([, v]: [string, any]) => v.name_label === 'compute-vm')
      .map(([ref]) => ref)
    const vmUuid = String(await x.VM.get_uuid(vmRef))

    const call = async (method: string, url: string, body?: unknown, auth = s.auth) => {
      const res = await s.app.inject({
        method: method as 'GET',
        url: `/api/v1${url}`,
        headers: auth,
        payload: body as any,
      })
      assert.equal(res.body.includes(PASSWORD), false, `${method} ${url} answered with the pool password`)
      return { status: res.statusCode, body: res.body ? res.json() : undefined }
    }
    const ok = async (method: string, url: string, body?: unknown) => {
      const r = await call(method, url, body)
      assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`)
      return r.body
    }

    await ok('POST', '/pools', { name: 'nn', url: sim.url, username: 'root', password: PASSWORD })
    await ok('POST', '/environments', { name: 'env1', release: 'mitaka-9.0' })
    await ok('POST', '/environments/env1/nodes', { name: 'compute-1', data: { pool: 'nn', vm: vmUuid, keep: 'me' } })
    await ok('POST', '/environments/env1/nodes', { name: 'controller-1', data: { pool: 'nn' } })

    await t.test('HIMN: not attached, then attached by the integration, then the guest agent address', async () => {
      const before = await ok('GET', '/environments/env1/nodes/compute-1/himn')
      assert.equal(before.applicable, true)
      assert.equal(before.vif, null)
      assert.equal(before.vm.name, 'compute-vm')
      assert.equal(before.vm.uuid, vmUuid)
      assert.equal(before.status, 'Ready. No reboot required.')

      await new HimnAttacher(x).add(vmRef)
      const after = await ok('GET', '/environments/env1/nodes/compute-1/himn')
      assert.equal(after.vif.attached, true)
      assert.match(after.vif.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/)
      assert.equal(after.xenstoreMac, after.vif.mac)
      assert.equal(after.network.bridge, 'xenapi')
      assert.equal(after.status, `Exists as VIF '${after.vif.device}' with MAC '${after.vif.mac}'.`)
      assert.equal(after.agentIp, undefined, 'no guest agent has reported an address')
      assert.equal(after.guest, undefined, 'the node has no access: the guest is not looked at')

      // what XAPI shows once the guest agent writes attr/vif/<device>/ipv4/0 (the guest metrics' networks)
      const pool = sim.pools[0].sim
      const metrics = String(pool.db.get(vmRef)!.guest_metrics)
      pool.db.update(metrics, { networks: { [`${after.vif.device}/ip`]: '169.254.0.2' } })
      assert.equal((await ok('GET', '/environments/env1/nodes/compute-1/himn')).agentIp, '169.254.0.2')

      const controller = await ok('GET', '/environments/env1/nodes/controller-1/himn')
      assert.equal(controller.applicable, false)
      assert.match(controller.reason, /controller-1 is not a VM of a pool/)
    })

    await t.test('interfaces: NICs from XAPI; a valid assignment is saved where the deployment reads it', async () => {
      const got = await ok('GET', '/environments/env1/nodes/compute-1/interfaces')
      assert.equal(got.source, 'xapi')
      assert.deepEqual(
        got.nics.map((n: any) => [n.name, n.network, n.himn]),
        [
          ['eth0', 'Pool-wide network associated with eth0', false],
          ['eth1', 'storage', false],
          ['eth9', 'Host internal management network', true],
        ],
      )
      assert.deepEqual(got.networks, ['public', 'management', 'storage', 'private'])
      assert.deepEqual(got.assignments, {})

      const saved = await ok('PUT', '/environments/env1/nodes/compute-1/interfaces', {
        nics: { eth0: ['public', 'management'], eth1: ['storage', 'private'], eth9: [] },
      })
      const want = { public: 'eth0', management: 'eth0', storage: 'eth1', private: 'eth1' }
      assert.deepEqual(saved.assignments, want)
      const node = s.state.environments.nodes('env1').find((n) => n.name === 'compute-1')!
      assert.deepEqual(node.data.interfaces, want)
      assert.equal(node.data.keep, 'me', "the node's other data is kept")
      assert.equal(node.data.vm, vmUuid)
    })

    await t.test('interfaces: every refusal names the field and leaves the stored assignment alone', async () => {
      const put = (nics: unknown) => call('PUT', '/environments/env1/nodes/compute-1/interfaces', { nics })
      const twice = await put({ eth0: ['public', 'management', 'storage'], eth1: ['storage', 'private'] })
      assert.equal(twice.status, 400)
      assert.match(twice.body.message, /storage: on eth0 and eth1; a network is on exactly one NIC/)

      const missing = await put({ eth0: ['public', 'management'], eth1: ['storage'] })
      assert.equal(missing.status, 400)
      assert.deepEqual(missing.body.problems, ['private: on no NIC; drag it onto one of eth0, eth1, eth9'])

      const unknown = await put({ eth0: ['public', 'management'], eth1: ['storage'], eth7: ['private'] })
      assert.equal(unknown.status, 400)
      assert.equal(unknown.body.field, 'body.nics.eth7')
      assert.match(unknown.body.message, /node compute-1 has no NIC eth7 \(its NICs: eth0, eth1, eth9\)/)

      const himn = await put({ eth0: ['public', 'management'], eth1: ['storage'], eth9: ['private'] })
      assert.equal(himn.status, 400)
      assert.equal(himn.body.field, 'body.nics.eth9')
      assert.match(himn.body.message, /eth9 is the HIMN's NIC/)

      const badName = await put({ eth0: ['public', 'management', 'storage', 'fuelweb_admin'], eth1: ['private'] })
      assert.equal(badName.status, 400)
      assert.match(badName.body.field, /^body\.nics\.eth0/)

      const notAList = await put({ eth0: 'management' })
      assert.equal(notAList.status, 400)
      assert.match(notAList.body.field, /^body\.nics\.eth0/)

      const node = s.state.environments.nodes('env1').find((n) => n.name === 'compute-1')!
      assert.equal(node.data.interfaces.private, 'eth1', 'refused changes stored nothing')
    })

    await t.test('interfaces: unknown node 404, node without NICs known 409, no token 401', async () => {
      const none = await call('GET', '/environments/env1/nodes/nope/interfaces')
      assert.equal(none.status, 404)
      assert.equal(none.body.field, 'params.node')
      assert.equal((await call('GET', '/environments/nope/nodes/compute-1/himn')).status, 404)
      const noAccess = await call('GET', '/environments/env1/nodes/controller-1/interfaces')
      assert.equal(noAccess.status, 409)
      assert.match(noAccess.body.message, /neither a VM of a pool .* nor reachable/)
      for (const url of ['/environments/env1/nodes/compute-1/himn', '/environments/env1/nodes/compute-1/interfaces'])
        assert.equal((await call('GET', url, undefined, { authorization: 'Bearer xst_wrong_x' })).status, 401)
      const put = await call('PUT', '/environments/env1/nodes/compute-1/interfaces', { nics: {} }, {} as any)
      assert.equal(put.status, 401)
    })

    await t.test('virtual IPs: unset, saved into the cluster model, a bad address refused on its field', async () => {
      assert.deepEqual(await ok('GET', '/environments/env1/vips'), { publicVip: null, managementVip: null })
      const before = s.state.environments.cluster('env1')
      const saved = await ok('PUT', '/environments/env1/vips', { publicVip: '10.20.0.2', managementVip: '10.30.0.2' })
      assert.deepEqual(saved, { publicVip: '10.20.0.2', managementVip: '10.30.0.2' })
      assert.deepEqual(
        s.state.environments.cluster('env1'),
        { ...before, public_vip: '10.20.0.2', management_vip: '10.30.0.2' },
        'the VIPs are in the cluster model, the rest of it kept',
      )
      const bad = await call('PUT', '/environments/env1/vips', { publicVip: '10.20.0.256', managementVip: '10.30.0.2' })
      assert.equal(bad.status, 400)
      assert.equal(bad.body.field, 'body.publicVip')
      const missing = await call('PUT', '/environments/env1/vips', { publicVip: '10.20.0.3' })
      assert.equal(missing.status, 400)
      assert.equal(missing.body.field, 'body.managementVip')
      assert.equal(s.state.environments.cluster('env1').public_vip, '10.20.0.2', 'refusals stored nothing')
      assert.equal((await call('GET', '/environments/nope/vips')).status, 404)
      assert.equal((await call('GET', '/environments/env1/vips', undefined, {} as any)).status, 401)
    })

    await t.test('a record naming a pool or VM that is not there: 404/409 naming it, never a 5xx', async () => {
      // port 1 on loopback: refused at once
      await ok('POST', '/pools', { name: 'down', url: 'http://127.0.0.1:1', username: 'root', password: 'x-Passw0rd' })
      await ok('POST', '/environments/env1/nodes', { name: 'ghost', data: { pool: 'nn', vm: 'no-such-vm' } })
      await ok('POST', '/environments/env1/nodes', { name: 'unreachable', data: { pool: 'down', vm: vmUuid } })
      await ok('POST', '/environments/env1/nodes', { name: 'nopool', data: { pool: 'gone', vm: vmUuid } })
      for (const what of ['himn', 'interfaces']) {
        const ghost = await call('GET', `/environments/env1/nodes/ghost/${what}`)
        assert.equal(ghost.status, 409, JSON.stringify(ghost.body))
        assert.match(ghost.body.message, /node ghost: pool nn: .*data\.vm.*no-such-vm/)
        const down = await call('GET', `/environments/env1/nodes/unreachable/${what}`)
        assert.equal(down.status, 409, JSON.stringify(down.body))
        assert.match(down.body.message, /node unreachable: pool down: .*127\.0\.0\.1:1/)
        const gone = await call('GET', `/environments/env1/nodes/nopool/${what}`)
        assert.equal(gone.status, 404, JSON.stringify(gone.body))
        assert.match(gone.body.message, /gone/)
      }
      const put = await call('PUT', '/environments/env1/nodes/unreachable/interfaces', { nics: { eth0: ['public'] } })
      assert.equal(put.status, 409)
    })

    await t.test('interfaces: a node reached on this machine lists the NICs it has', async () => {
      await ok('POST', '/environments/env1/nodes', { name: 'local-1', data: { local: true } })
      const got = await ok('GET', '/environments/env1/nodes/local-1/interfaces')
      assert.equal(got.source, 'node')
      assert.ok(
        got.nics.every((n: any) => typeof n.name === 'string' && n.name !== 'lo'),
        JSON.stringify(got.nics),
      )
    })
  })
}

test('an assignment against where the node holds its addresses (NICs read on the node)', () => {
  const nics = [
    { name: 'eth0', mac: '02:00:00:00:00:01', ipv4: ['10.1.0.5/22'], himn: false },
    { name: 'eth1', mac: '02:00:00:00:00:02', ipv4: ['10.2.0.5/25'], himn: false },
    { name: 'eth2', mac: '02:00:00:00:00:03', ipv4: ['169.254.0.2/16'], himn: true },
  ]
  const addresses = { management: '10.1.0.5/22', storage: '10.2.0.5/25' }
  assert.deepEqual(
    assignmentsFrom('c1', { eth0: ['public', 'management'], eth1: ['storage', 'private'] }, nics, addresses),
    { public: 'eth0', management: 'eth0', storage: 'eth1', private: 'eth1' },
  )
  assert.throws(
    () => assignmentsFrom('c1', { eth0: ['public', 'storage'], eth1: ['management', 'private'] }, nics, addresses),
    (e: Error & { extra?: { problems?: string[] } }) => {
      assert.deepEqual(e.extra?.problems, [
        "management: the node's management address 10.1.0.5/22 is on eth0, not eth1",
        "storage: the node's storage address 10.2.0.5/25 is on eth1, not eth0",
      ])
      return true
    },
  )
  // an address no NIC is known to hold (the guest not reachable) is not judged
  assert.equal(
    assignmentsFrom('c1', { eth0: ['public', 'management', 'storage', 'private'] }, nics.slice(0, 1), addresses)
      .storage,
    'eth0',
  )
})
