/** Sessions (§5) and pools: HOST_IS_SLAVE on members' own addresses, master changes, host facts. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { start, PASSWORD } from './rpc.js'

test('login, logout, SESSION_INVALID, the test hook and idle expiry', async (t) => {
  const r = await start({ hosts: 1 }, { sessions: { idleTimeoutMs: 1500 } })
  t.after(() => r.close())
  const bad = await r.json('session.login_with_password', ['root', 'nope'])
  assert.deepEqual(bad.error, {
    code: 1,
    message: 'SESSION_AUTHENTICATION_FAILED',
    data: ['root', 'Authentication failure'],
  })
  const s = await r.login('x')
  assert.ok(!(await r.json('pool.get_all', [s])).error)
  const rec = (await r.json('session.get_record', [s, s])).result as Record<string, unknown>
  assert.equal(rec.originator, 'x')
  assert.equal(rec.this_host, r.sim.master)
  assert.equal((await r.json('session.get_this_host', [s, s])).result, r.sim.master)
  await r.json('session.logout', [s])
  assert.deepEqual((await r.json('pool.get_all', [s])).error, { code: 1, message: 'SESSION_INVALID', data: [s] })
  const s2 = await r.login()
  r.sim.sessions.expire(s2)
  assert.equal(((await r.json('pool.get_all', [s2])).error as { message: string }).message, 'SESSION_INVALID')
  const s3 = await r.login()
  await new Promise((res) => setTimeout(res, 2000))
  assert.equal(((await r.json('pool.get_all', [s3])).error as { message: string }).message, 'SESSION_INVALID')
  // os-xenapi passes its plugin version '2.1' as the API version
  assert.ok(!(await r.json('session.login_with_password', ['root', PASSWORD, '2.1', 'os-xenapi'])).error)
})

test('at most N sessions per originator, the oldest evicted', async (t) => {
  const r = await start({ hosts: 1 }, { sessions: { maxPerOriginator: 5 } })
  t.after(() => r.close())
  const mine: string[] = []
  for (let i = 0; i < 7; i++) mine.push(await r.login('leaky'))
  const other = await r.login('other')
  const valid = async (s: string) => !(await r.json('pool.get_all', [s])).error
  assert.deepEqual(await Promise.all(mine.map(valid)), [false, false, true, true, true, true, true])
  assert.ok(await valid(other))
})

test('members answer HOST_IS_SLAVE with the master address on their own loopback address', async (t) => {
  const r = await start({ hosts: 3 })
  t.after(() => r.close())
  const member = r.url.replace('127.0.0.1', '127.0.0.3')
  const login = await r.json('session.login_with_password', ['root', PASSWORD], member)
  assert.deepEqual(login.error, { code: 1, message: 'HOST_IS_SLAVE', data: ['127.0.0.1'] })
  const s = await r.login()
  assert.equal(((await r.json('VM.get_all', [s], member)).error as { message: string }).message, 'HOST_IS_SLAVE')
  const xml = await r.post(
    '/',
    '<methodCall><methodName>session.login_with_password</methodName><params><param><value>root</value></param><param><value>x</value></param></params></methodCall>',
    member,
  )
  assert.ok(xml.body.includes('<value>HOST_IS_SLAVE</value><value>127.0.0.1</value>'))
  // a pool (slave-local) session is served by the member
  const local = await r.json('session.slave_local_login_with_password', ['root', PASSWORD], member)
  assert.ok(!local.error, JSON.stringify(local.error))
  assert.ok(!(await r.json('VM.get_all', [local.result], member)).error)
  // designate_new_master: the old master now redirects to the new one
  const h3 = r.sim.db.find('host', (h) => h.address === '127.0.0.3')!
  await r.ok('pool.designate_new_master', h3)
  assert.ok(!(await r.json('session.login_with_password', ['root', PASSWORD], member)).error)
  assert.deepEqual((await r.json('session.login_with_password', ['root', PASSWORD])).error, {
    code: 1,
    message: 'HOST_IS_SLAVE',
    data: ['127.0.0.3'],
  })
})

test('host software_version per host, enable/disable, servertime, management interface; pool.eject', async (t) => {
  const r = await start({
    hosts: [
      { name: 'a', version: '6.5.0' },
      { name: 'b', version: '7.0.0' },
      { name: 'c', version: '8.2.1' },
    ],
  })
  t.after(() => r.close())
  const hosts = await r.ok<Record<string, Record<string, unknown>>>('host.get_all_records')
  const byName = Object.fromEntries(Object.entries(hosts).map(([ref, h]) => [h.name_label as string, { ref, h }]))
  const sv = (n: string) => byName[n].h.software_version as Record<string, string>
  assert.equal(sv('a').product_version, '6.5.0')
  assert.equal(sv('a').platform_version, '1.9.0')
  assert.equal(sv('b').platform_version, '2.1.0')
  assert.equal(sv('c').platform_version, '3.2.1')
  assert.ok(sv('a').build_number && sv('a').product_brand)
  const a = byName.a.ref
  await r.ok('host.disable', a)
  assert.equal(await r.ok('host.get_enabled', a), false)
  await r.ok('host.enable', a)
  assert.equal(await r.ok('host.get_enabled', a), true)
  assert.match(await r.ok<string>('host.get_servertime', a), /^\d{8}T\d\d:\d\d:\d\dZ$/)
  const pif = await r.ok<string>('host.get_management_interface', a)
  assert.equal(await r.ok('PIF.get_IP', pif), hosts[a].address)
  const c = byName.c.ref
  await r.ok('pool.eject', c)
  assert.equal(Object.keys(await r.ok<object>('host.get_all_records')).length, 2)
  assert.equal(r.sim.db.where('PIF', (p) => p.host === c).length, 0)
})

test('every host sees the Host internal management network; network.create and VLAN.create', async (t) => {
  const r = await start({ hosts: 2 })
  t.after(() => r.close())
  const nets = await r.ok<Record<string, Record<string, unknown>>>('network.get_all_records')
  const himn = Object.values(nets).filter((n) => n.bridge === 'xenapi')
  assert.equal(himn.length, 1)
  assert.equal(himn[0].name_label, 'Host internal management network')
  assert.deepEqual(himn[0].other_config, {
    is_guest_installer_network: 'true',
    is_host_internal_management_network: 'true',
    ip_begin: '169.254.0.1',
    ip_end: '169.254.255.254',
    netmask: '255.255.0.0',
  })
  const mgmtPifs = Object.values(await r.ok<Record<string, Record<string, unknown>>>('PIF.get_all_records')).filter(
    (p) => p.management,
  )
  assert.equal(mgmtPifs.length, 2)
  const net = await r.ok<string>('network.create', { name_label: 'vlan-net', other_config: {} })
  const tagged = r.sim.db.find('PIF', (p) => p.management === true)!
  const vlan = await r.ok<string>('VLAN.create', tagged, 42, net)
  const untagged = await r.ok<string>('VLAN.get_untagged_PIF', vlan)
  assert.equal(await r.ok('PIF.get_VLAN', untagged), 42)
  assert.equal(await r.ok('PIF.get_network', untagged), net)
  assert.deepEqual(await r.ok('PIF.get_VLAN_slave_of', tagged), [vlan])
  assert.equal((await r.err('VLAN.create', tagged, 42, net))[0], 'PIF_VLAN_EXISTS')
  assert.deepEqual(await r.err('VLAN.create', tagged, 5000, net), ['VLAN_TAG_INVALID', '5000'])
  await r.ok('VLAN.destroy', vlan)
  assert.deepEqual(await r.ok('network.get_PIFs', net), [])
})

test('Bond.create over two PIFs of one host, and Bond.destroy', async (t) => {
  const r = await start({
    hosts: 1,
    networks: [
      { name: 'a', pif: { device: 'eth1' } },
      { name: 'b', pif: { device: 'eth2' } },
    ],
  })
  t.after(() => r.close())
  const p1 = r.sim.db.find('PIF', (p) => p.device === 'eth1')!
  const p2 = r.sim.db.find('PIF', (p) => p.device === 'eth2')!
  const net = await r.ok<string>('network.create', { name_label: 'bond-net', other_config: {} })
  const bond = await r.ok<string>('Bond.create', net, [p1, p2], '', 'active-backup', {})
  const rec = await r.ok<Record<string, unknown>>('Bond.get_record', bond)
  assert.equal(rec.mode, 'active-backup')
  assert.deepEqual([...(rec.slaves as string[])].sort(), [p1, p2].sort())
  const master = rec.master as string
  assert.equal(await r.ok('PIF.get_device', master), 'bond0')
  assert.deepEqual(await r.ok('PIF.get_bond_master_of', master), [bond])
  assert.equal(await r.ok('PIF.get_bond_slave_of', p1), bond)
  assert.deepEqual(await r.err('Bond.create', net, [p1, p2], '', 'lacp', {}), ['PIF_ALREADY_BONDED', p1])
  await r.ok('Bond.destroy', bond)
  assert.equal(await r.ok('PIF.get_bond_slave_of', p1), 'OpaqueRef:NULL')
  assert.equal(r.sim.db.has('PIF', master), false)
})
